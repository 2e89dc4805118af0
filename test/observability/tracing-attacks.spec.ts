import { type INestApplication, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { context, type Span, SpanStatusCode, trace } from '@opentelemetry/api';
import { ConcurrencyModule, FanOut, getSupervisorToken, type TaskSupervisor } from 'nestjs-concurrency';
import { installTracing, parentOf } from './tracing-utils.js';

/** Hostile values and orders against the spans: odd throws, restarts settled elsewhere, two apps in one process. */

async function boot(options: object = {}) {
  @Module({ imports: [ConcurrencyModule.forRoot(options)] })
  class AppModule {}
  const app = await NestFactory.create(AppModule, { abortOnError: false, logger: false });
  await app.init();
  return app;
}

const supervisorOf = (app: INestApplication) => app.get<TaskSupervisor>(getSupervisorToken('default'));
const trap = () => {
  throw new Error('trap');
};
const hostile = () =>
  new Proxy(
    {},
    {
      get() {
        throw new Error('trap');
      },
      getPrototypeOf() {
        throw new Error('trap');
      },
      has() {
        throw new Error('trap');
      },
    },
  );

describe('tracing under hostile values and orders', () => {
  let otel: ReturnType<typeof installTracing>;
  const apps: INestApplication[] = [];
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => void unhandled.push(reason);
  beforeEach(() => {
    otel = installTracing();
    unhandled.length = 0;
    process.on('unhandledRejection', onUnhandled);
  });
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
    await otel.uninstall();
    process.off('unhandledRejection', onUnhandled);
  });

  it('a thrown null, string or trapping Proxy ends the span as ERROR; nothing escapes, the supervisor goes on', async () => {
    const app = await boot();
    apps.push(app);
    const sup = supervisorOf(app);
    const throws: [string, () => unknown][] = [
      ['null', () => null],
      ['string', () => 'plain'],
      ['proxy', hostile],
      ['undefined', () => undefined],
      [
        'getters',
        () =>
          Object.defineProperties(new Error('x'), {
            message: { get: trap },
            name: { get: trap },
            stack: { get: trap },
          }),
      ],
    ];
    for (const [name, make] of throws) {
      sup.startChild(
        () => {
          throw make();
        },
        { name },
      );
      const task = sup.async(() => Promise.reject(make()), { name: `async-${name}` });
      await task.await().catch(() => undefined);
    }
    await vi.waitFor(() => expect(otel.spans().filter((s) => s.name.startsWith('task '))).toHaveLength(10));
    for (const span of otel.spans().filter((s) => s.name.startsWith('task '))) {
      expect(span.status.code, span.name).toBe(SpanStatusCode.ERROR);
      expect(span.attributes['concurrency.outcome'], span.name).toBe('failed');
    }
    expect(await sup.async(() => 'still up').await()).toBe('still up');
    await new Promise((resolve) => setImmediate(resolve));
    expect(unhandled).toEqual([]);
  });

  it('a fan-out item throwing a trapping Proxy, items traced: the call and item spans end, map() rejects', async () => {
    const app = await boot({ tracing: { fanOutItems: true } });
    apps.push(app);
    const fanOut = app.get(FanOut);
    await expect(
      fanOut.map([1, 2], () => {
        throw hostile();
      }),
    ).rejects.toBeDefined();
    await vi.waitFor(() => expect(otel.spans('fan-out map')).toHaveLength(1));
    expect(otel.spans('fan-out map')[0].status.code).toBe(SpanStatusCode.ERROR);
    await new Promise((resolve) => setImmediate(resolve));
    expect(unhandled).toEqual([]);
  });

  it("every attempt of a restarted child is a child of the starter's span, whoever settles the failure", async () => {
    const app = await boot();
    apps.push(app);
    const sup = supervisorOf(app);
    let attempts = 0;
    let starter!: Span;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    otel.tracer.startActiveSpan('request', (span) => {
      starter = span;
      sup.startChild(
        async () => {
          if (++attempts === 1) {
            await gate;
            throw new Error('first');
          }
        },
        { name: 'flaky', restart: 'transient' },
      );
      span.end();
    });
    // The failure settles inside another span's context.
    otel.tracer.startActiveSpan('elsewhere', (span) => {
      release();
      span.end();
    });
    await vi.waitFor(() => expect(otel.spans('task flaky')).toHaveLength(2));
    for (const span of otel.spans('task flaky')) {
      expect(span.spanContext().traceId).toBe(starter.spanContext().traceId);
      expect(parentOf(span)).toBe(starter.spanContext().spanId);
    }
  });

  it('two apps in one process: each names its own supervisor, both under the caller span, tracing: false in one', async () => {
    const traced = await boot();
    const silent = await boot({ tracing: false });
    apps.push(traced, silent);
    await otel.tracer.startActiveSpan('request', async (span) => {
      await Promise.all([
        supervisorOf(traced)
          .async(() => 1)
          .await(),
        supervisorOf(silent)
          .async(() => 2)
          .await(),
      ]);
      span.end();
    });
    const tasks = otel.spans().filter((s) => s.name.startsWith('task '));
    expect(tasks).toHaveLength(1);
    expect(parentOf(tasks[0])).toBe(otel.spans('request')[0].spanContext().spanId);
  });

  it("context.with() between two starts in one tick: each task and FanOut.async() run in their own span's trace", async () => {
    const app = await boot();
    apps.push(app);
    const sup = supervisorOf(app);
    const fanOut = app.get(FanOut);
    const a = otel.tracer.startSpan('a', { root: true });
    const b = otel.tracer.startSpan('b', { root: true });
    const traceOf = () => trace.getActiveSpan()?.spanContext().traceId;
    const start = (name: string) => [sup.async(traceOf, { name }), fanOut.async(traceOf)] as const;
    const [ta, fa] = context.with(trace.setSpan(context.active(), a), () => start('ta'));
    const [tb, fb] = context.with(trace.setSpan(context.active(), b), () => start('tb'));
    expect([await ta.await(), await fanOut.awaitMany([fa])]).toEqual([
      a.spanContext().traceId,
      [a.spanContext().traceId],
    ]);
    expect([await tb.await(), await fanOut.awaitMany([fb])]).toEqual([
      b.spanContext().traceId,
      [b.spanContext().traceId],
    ]);
    expect(parentOf(otel.spans('task ta')[0])).toBe(a.spanContext().spanId);
    expect(parentOf(otel.spans('task tb')[0])).toBe(b.spanContext().spanId);
    a.end();
    b.end();
  });
});
