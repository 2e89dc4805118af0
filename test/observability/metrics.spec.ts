import { Injectable, Logger, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { metrics } from '@opentelemetry/api';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
  type MetricData,
} from '@opentelemetry/sdk-metrics';
import { readFileSync } from 'node:fs';
import { channel } from 'node:diagnostics_channel';
import { createServer, type Socket } from 'node:net';
import {
  CacheService,
  ConcurrencyModule,
  CONCURRENCY_CHANNELS,
  FanOut,
  Interval,
  JobRegistry,
  TaskSupervisor,
  InjectSupervisor,
  DurableSupervisor,
  TaskHandler,
} from 'nestjs-concurrency';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';

@Injectable()
class Work {
  constructor(@InjectSupervisor() readonly supervisor: TaskSupervisor) {}
  @Interval(60_000, { name: 'report' })
  report() {
    throw new Error('report failed');
  }
}

@Module({ imports: [ConcurrencyModule.forRoot()], providers: [Work] })
class AppModule {}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('OpenTelemetry metrics', () => {
  let exporter: InMemoryMetricExporter;
  let reader: PeriodicExportingMetricReader;

  /** The metrics exported so far, by name. */
  async function collect(): Promise<Map<string, MetricData>> {
    await reader.forceFlush();
    const byName = new Map<string, MetricData>();
    for (const batch of exporter.getMetrics()) {
      for (const scope of batch.scopeMetrics)
        for (const metric of scope.metrics) byName.set(metric.descriptor.name, metric);
    }
    return byName;
  }

  /** The sum of a counter's data points whose attributes include `attrs`. */
  function sum(metric: MetricData | undefined, attrs: Record<string, unknown> = {}): number {
    let total = 0;
    for (const point of metric?.dataPoints ?? []) {
      if (Object.entries(attrs).every(([k, v]) => point.attributes[k] === v)) total += point.value as number;
    }
    return total;
  }

  beforeEach(() => {
    vi.spyOn(Logger.prototype, 'error').mockImplementation(() => {});
    exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
  });

  afterEach(async () => {
    metrics.disable();
    await reader.shutdown();
    vi.restoreAllMocks();
  });

  it('counts task starts and failures and records their durations in seconds, per supervisor', async () => {
    const app = await NestFactory.createApplicationContext(AppModule, { logger: false, abortOnError: false });
    const sup = app.get(Work).supervisor;
    sup.startChild(() => 'ok');
    sup.startChild(() => 'ok');
    sup.startChild(() => {
      throw new Error('boom');
    });
    await until(() => sup.counts.completed + sup.counts.failed === 3, 'three children settled');
    const data = await collect();
    await app.close();

    expect(sum(data.get('concurrency.task.starts'), { 'concurrency.supervisor': 'default' })).toBe(3);
    expect(sum(data.get('concurrency.task.failures'), { 'concurrency.supervisor': 'default' })).toBe(1);
    const duration = data.get('concurrency.task.duration')!;
    expect(duration.descriptor.unit).toBe('s');
    const points = duration.dataPoints.filter((p) => p.attributes['concurrency.supervisor'] === 'default');
    const count = (outcome: string) =>
      points
        .filter((p) => p.attributes['concurrency.outcome'] === outcome)
        .reduce((n, p) => n + (p.value as { count: number }).count, 0);
    expect(count('completed')).toBe(2);
    expect(count('failed')).toBe(1);
  });

  it("names the instrumentation scope with the package's version", async () => {
    const app = await NestFactory.createApplicationContext(AppModule, { logger: false, abortOnError: false });
    await reader.forceFlush();
    await app.close();
    const version = (
      JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
    ).version;
    const scopes = exporter.getMetrics().flatMap((batch) => batch.scopeMetrics.map((m) => m.scope));
    expect(scopes).toContainEqual(expect.objectContaining({ name: 'nestjs-concurrency', version }));
  });

  it.runIf(redisAvailable)(
    'reports the durable queue depth by task and state, read from Redis at collection',
    async () => {
      const redis = await RedisServer.start();
      @Injectable()
      class Handlers {
        @TaskHandler('send-mail')
        send(): void {}
      }
      @Module({
        imports: [ConcurrencyModule.forRoot({ durable: { connection: redis.url, workers: false } })],
        providers: [Handlers],
      })
      class DurableModule {}
      const app = await NestFactory.createApplicationContext(DurableModule, { logger: false, abortOnError: false });
      try {
        const durable = app.get(DurableSupervisor);
        await durable.startChild('send-mail', { to: 'a' });
        await durable.startChild('send-mail', { to: 'b' });
        await durable.startChild('send-mail', { to: 'c' }, { delay: 60_000 });
        const data = await collect();
        const depth = data.get('concurrency.durable.queue.depth');
        expect(sum(depth, { 'concurrency.durable.task': 'send-mail', 'concurrency.durable.state': 'waiting' })).toBe(3);
        expect(sum(depth, { 'concurrency.durable.task': 'send-mail', 'concurrency.durable.state': 'running' })).toBe(0);
        expect(sum(depth, { 'concurrency.durable.task': 'send-mail', 'concurrency.durable.state': 'failed' })).toBe(0);
      } finally {
        await app.close();
        await redis.stop();
      }
    },
  );

  it('bounds the durable queue read by durable.storeTimeout: a Redis that never answers does not hold collection up', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const url = `redis://127.0.0.1:${(silent.address() as { port: number }).port}`;
    @Injectable()
    class Handlers {
      @TaskHandler('send-mail')
      send(): void {}
    }
    @Module({
      imports: [ConcurrencyModule.forRoot({ durable: { connection: url, workers: false, storeTimeout: 500 } })],
      providers: [Handlers],
    })
    class SilentModule {}
    const app = await NestFactory.createApplicationContext(SilentModule, { logger: false, abortOnError: false });
    try {
      const started = Date.now();
      const data = await collect();
      // storeTimeout is 500 ms; 5 s is a generous bound on a loaded machine, far below a hung read.
      expect(Date.now() - started).toBeLessThan(5000);
      expect(data.get('concurrency.durable.queue.depth')?.dataPoints ?? []).toHaveLength(0);
    } finally {
      await app.close();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('reports no durable queue depth when durable is not configured', async () => {
    const app = await NestFactory.createApplicationContext(AppModule, { logger: false, abortOnError: false });
    const data = await collect();
    await app.close();
    expect(data.get('concurrency.durable.queue.depth')?.dataPoints ?? []).toHaveLength(0);
  });

  it('reports gauges: live children per supervisor, running jobs per job, cache entries', async () => {
    const app = await NestFactory.createApplicationContext(AppModule, { logger: false, abortOnError: false });
    const sup = app.get(Work).supervisor;
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    sup.startChild(() => held);
    sup.startChild(() => held);
    const data = await collect();
    release();
    await app.close();
    expect(sum(data.get('concurrency.task.running'), { 'concurrency.supervisor': 'default' })).toBe(2);
    expect(data.get('concurrency.job.running')).toBeDefined();
    expect(data.get('concurrency.cache.entries')?.dataPoints).toHaveLength(1);
  });

  it('counts job runs by outcome, skips by reason, fan-out items and timeouts, cache lookups by result', async () => {
    const app = await NestFactory.createApplicationContext(AppModule, { logger: false, abortOnError: false });
    const jobs = app.get(JobRegistry);
    await expect(jobs.trigger('report')).rejects.toThrow('report failed');
    await app
      .get(FanOut)
      .settle(
        [1, 2, 3],
        (n, ctx) => (n === 3 ? new Promise((resolve) => ctx.signal.addEventListener('abort', resolve)) : n),
        { timeout: 30 },
      );
    const cache = app.get(CacheService);
    await cache.getOrStore('k', () => 1);
    await cache.getOrStore('k', () => 2);
    const data = await collect();
    await app.close();

    expect(
      sum(data.get('concurrency.job.runs'), { 'concurrency.job': 'report', 'concurrency.outcome': 'failed' }),
    ).toBe(1);
    expect(data.get('concurrency.job.duration')?.descriptor.unit).toBe('s');
    expect(sum(data.get('concurrency.fan_out.items'), { 'concurrency.outcome': 'fulfilled' })).toBe(2);
    expect(sum(data.get('concurrency.fan_out.items'), { 'concurrency.outcome': 'timeout' })).toBe(1);
    expect(sum(data.get('concurrency.fan_out.timeouts'))).toBe(1);
    expect(sum(data.get('concurrency.cache.lookups'), { 'concurrency.cache.result': 'miss' })).toBe(1);
    expect(sum(data.get('concurrency.cache.lookups'), { 'concurrency.cache.result': 'hit' })).toBe(1);
  });

  it('counts each event once with two applications in the process, and unsubscribes when the last one closes', async () => {
    const one = await NestFactory.createApplicationContext(AppModule, { logger: false, abortOnError: false });
    const two = await NestFactory.createApplicationContext(AppModule, { logger: false, abortOnError: false });
    const sup = one.get(Work).supervisor;
    sup.startChild(() => undefined);
    await until(() => sup.counts.completed === 1, 'the child settled');
    const data = await collect();
    await one.close();
    expect(channel(CONCURRENCY_CHANNELS.supervisor).hasSubscribers).toBe(true);
    await two.close();
    expect(sum(data.get('concurrency.task.starts'))).toBe(1);
    expect(channel(CONCURRENCY_CHANNELS.supervisor).hasSubscribers).toBe(false);
  });

  it('subscribes to nothing while no SDK is registered (the API is a no-op)', async () => {
    metrics.disable();
    const app = await NestFactory.createApplicationContext(AppModule, { logger: false, abortOnError: false });
    try {
      for (const name of Object.values(CONCURRENCY_CHANNELS)) expect(channel(name).hasSubscribers).toBe(false);
    } finally {
      await app.close();
    }
  });

  it('counts durable attempts run on this instance under concurrency.supervisor durable', async () => {
    const app = await NestFactory.createApplicationContext(AppModule, { logger: false, abortOnError: false });
    // What a durable worker publishes for an attempt (lib/durable publishes SupervisorEvents there).
    const durable = channel(CONCURRENCY_CHANNELS.durable);
    durable.publish({ type: 'started', supervisor: 'durable', childId: 'send:1', name: 'send', attempt: 1 });
    durable.publish({
      type: 'failed',
      supervisor: 'durable',
      childId: 'send:1',
      name: 'send',
      attempt: 1,
      durationMs: 20,
    });
    const data = await collect();
    await app.close();
    expect(sum(data.get('concurrency.task.starts'), { 'concurrency.supervisor': 'durable' })).toBe(1);
    expect(sum(data.get('concurrency.task.failures'), { 'concurrency.supervisor': 'durable' })).toBe(1);
  });

  it('counts skipped ticks by reason and lock failures', async () => {
    @Injectable()
    class Slow {
      release!: () => void;
      @Interval(3_600_000, { name: 'slow' })
      run() {
        return new Promise<void>((resolve) => (this.release = resolve));
      }
      // A lock whose store fails: every tick is skipped and counted as a lock failure.
      @Interval(40, { name: 'locked', lock: { store: { acquire: () => Promise.reject(new Error('redis down')) } } })
      locked() {}
    }
    @Module({ imports: [ConcurrencyModule.forRoot()], providers: [Slow] })
    class SlowModule {}
    const app = await NestFactory.createApplicationContext(SlowModule, { logger: false, abortOnError: false });
    try {
      const jobs = app.get(JobRegistry);
      const running = jobs.trigger('slow');
      await expect(jobs.trigger('slow')).rejects.toThrow();
      app.get(Slow).release();
      await running;
      await until(() => jobs.get('locked').lockFailures >= 1, 'a lock failure');
      const data = await collect();
      const skips = data.get('concurrency.job.skips');
      expect(sum(skips, { 'concurrency.job': 'slow', 'concurrency.job.skip_reason': 'overlap' })).toBe(1);
      expect(
        sum(skips, { 'concurrency.job': 'locked', 'concurrency.job.skip_reason': 'lock-failed' }),
      ).toBeGreaterThanOrEqual(1);
      expect(sum(data.get('concurrency.job.lock.failures'), { 'concurrency.job': 'locked' })).toBeGreaterThanOrEqual(1);
    } finally {
      await app.close();
    }
  });
});
