/**
 * bench/observability: the cost of watching.
 *
 * 1,000,000 trivial `startChild()` calls on the 'default' supervisor of a real Nest application (Express, on loopback)
 * without a dashboard, vs the same on an application whose dashboard is open: an SSE client (in this process, so its
 * parsing counts too) receives a snapshot every second. Goal: <= 1.3x. Measured as one synchronous burst and paced
 * at 1,000 per macrotask (the dashboard's timer only fires between macrotasks: the paced run is the one in which
 * snapshots are taken during the burst). Then, for information: the same paced burst with a diagnostics_channel
 * subscriber (what the OpenTelemetry metrics add when an SDK is registered), against the same baseline.
 */
import { type INestApplication, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { get } from 'node:http';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { CONCURRENCY_CHANNELS, ConcurrencyModule, getSupervisorToken, type TaskSupervisor } from 'nestjs-concurrency';
import { compare, gc, goal, printPeakRss } from '../harness.js';

const N = Number(process.env.BENCH_TASKS ?? 1_000_000);
const nextMacrotask = () => new Promise<void>((resolve) => setImmediate(resolve));

@Module({ imports: [ConcurrencyModule.forRoot()] })
class PlainApp {}

@Module({ imports: [ConcurrencyModule.forRoot({ dashboard: { guard: false } })] })
class WatchedApp {}

async function boot(module: object): Promise<{ app: INestApplication; supervisor: TaskSupervisor; port: number }> {
  const app = await NestFactory.create(module as never, { logger: false });
  await app.listen(0, '127.0.0.1');
  const port = (app.getHttpServer().address() as { port: number }).port;
  return { app, supervisor: app.get<TaskSupervisor>(getSupervisorToken('default')), port };
}

async function timeTasks(supervisor: TaskSupervisor, perTick = N): Promise<number> {
  let done = 0;
  let finish!: () => void;
  const all = new Promise<void>((resolve) => (finish = resolve));
  const fn = async () => {
    if (++done === N) finish();
  };
  gc();
  const t0 = performance.now();
  for (let i = 0; i < N;) {
    const end = Math.min(N, i + perTick);
    for (; i < end; i++) supervisor.startChild(fn);
    if (i < N) await nextMacrotask();
  }
  await all;
  await nextMacrotask();
  return ((performance.now() - t0) * 1e6) / N;
}

const plain = await boot(PlainApp);
const watched = await boot(WatchedApp);

// The open dashboard: an SSE client that parses every snapshot, as the page does.
let snapshots = 0;
const sse = get({ host: '127.0.0.1', port: watched.port, path: '/_concurrency/events' }, (res) => {
  res.setEncoding('utf8');
  let buffer = '';
  res.on('data', (chunk: string) => {
    buffer += chunk;
    let end: number;
    while ((end = buffer.indexOf('\n\n')) !== -1) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = event.split('\n').find((line) => line.startsWith('data: '));
      if (data) {
        JSON.parse(data.slice(6));
        snapshots++;
      }
    }
  });
});
sse.on('error', () => undefined);
while (snapshots === 0) await nextMacrotask();

const burst = await compare(
  `${N.toLocaleString('en')} startChild() in one burst, time per task`,
  'ns',
  { name: 'no dashboard', run: () => timeTasks(plain.supervisor) },
  { name: 'dashboard connected', run: () => timeTasks(watched.supervisor) },
);
goal('dashboard connected <= 1.3x, one burst', burst.ratio <= 1.3, `${burst.ratio.toFixed(2)}x`);

const before = snapshots;
const paced = await compare(
  `${N.toLocaleString('en')} startChild() at 1,000 per macrotask, time per task`,
  'ns',
  { name: 'no dashboard', run: () => timeTasks(plain.supervisor, 1000) },
  { name: 'dashboard connected', run: () => timeTasks(watched.supervisor, 1000) },
);
console.log(`snapshots received during the paced runs: ${snapshots - before}`);
goal('dashboard connected <= 1.3x, paced', paced.ratio <= 1.3, `${paced.ratio.toFixed(2)}x`);

// For information: a subscriber on the supervisor channel (the OpenTelemetry metrics subscribe there when an SDK is
// registered): one event object per start and per end.
let events = 0;
const onEvent = () => void events++;
await compare(
  `${N.toLocaleString('en')} startChild() at 1,000 per macrotask, diagnostics_channel subscriber (info)`,
  'ns',
  { name: 'nobody subscribed', run: () => timeTasks(plain.supervisor, 1000) },
  {
    name: 'subscribed',
    run: async () => {
      subscribe(CONCURRENCY_CHANNELS.supervisor, onEvent);
      try {
        return await timeTasks(plain.supervisor, 1000);
      } finally {
        unsubscribe(CONCURRENCY_CHANNELS.supervisor, onEvent);
      }
    },
  },
);
console.log(`events received: ${events.toLocaleString('en')}`);

// For information: one snapshot (what the page gets each second) with 100,000 live children on the supervisor.
{
  let release!: () => void;
  const parked = new Promise<void>((resolve) => (release = resolve));
  for (let i = 0; i < 100_000; i++) watched.supervisor.startChild(() => parked);
  await nextMacrotask();
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const res = await fetch(`http://127.0.0.1:${watched.port}/_concurrency/snapshot`);
    await res.json();
    times.push(performance.now() - t0);
  }
  release();
  times.sort((x, y) => x - y);
  console.log(
    `snapshot with 100,000 live children: median ${times[2].toFixed(1)} ms (runs ${times.map((t) => t.toFixed(1)).join(', ')})`,
  );
}

sse.destroy();
await watched.app.close();

// Tracing (issue 26). "No provider" is the plain app above: it booted before any tracer provider was registered,
// so its supervisors hold no tracer (the cost is one undefined check per child). For information: the same burst on
// an app booted with a provider registered, spans sent to an exporter that drops them (the SDK's own cost, a span
// per child), and the burst of an AsyncLocalStorage user (one value set around the burst) on the plain app.
{
  const { context, trace } = await import('@opentelemetry/api');
  const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks');
  const { BasicTracerProvider, SimpleSpanProcessor } = await import('@opentelemetry/sdk-trace-base');
  const { AsyncLocalStorage } = await import('node:async_hooks');
  const als = new AsyncLocalStorage<string>();
  await compare(
    `${N.toLocaleString('en')} startChild() in one burst, an AsyncLocalStorage value set (info)`,
    'ns',
    { name: 'no value', run: () => timeTasks(plain.supervisor) },
    { name: 'als.run(value)', run: () => als.run('tenant', () => timeTasks(plain.supervisor)) },
  );
  const dropped = {
    export: (_spans: unknown, done: (r: { code: number }) => void) => done({ code: 0 }),
    shutdown: async () => {},
  };
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(dropped as never)] });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(provider);
  const traced = await boot(PlainApp);
  await compare(
    `${N.toLocaleString('en')} startChild() in one burst, tracer provider registered, no-op exporter (info)`,
    'ns',
    { name: 'no provider', run: () => timeTasks(plain.supervisor) },
    { name: 'provider, span per child', run: () => timeTasks(traced.supervisor) },
    3,
  );
  await traced.app.close();
  await provider.shutdown();
  trace.disable();
  context.disable();
}

await plain.app.close();
printPeakRss();
