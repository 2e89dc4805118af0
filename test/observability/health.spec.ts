import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { Redis } from 'ioredis';
import {
  ConcurrencyHealthIndicator,
  ConcurrencyModule,
  type ConcurrencyModuleOptions,
  Interval,
  JobRegistry,
  RedisJobLock,
} from 'nestjs-concurrency';
import { redisStore } from '../fixtures/cache-redis.js';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';

async function boot(options: ConcurrencyModuleOptions, providers: Array<new (...args: never[]) => unknown> = []) {
  @Module({ imports: [ConcurrencyModule.forRoot(options), TerminusModule], providers })
  class AppModule {}
  return NestFactory.createApplicationContext(AppModule, { logger: false, abortOnError: false });
}

describe('ConcurrencyHealthIndicator', () => {
  it('is up with in-memory defaults, and down with the part named once the application starts closing', async () => {
    let during: unknown;
    @Injectable()
    class Probe {
      constructor(private readonly health: ConcurrencyHealthIndicator) {}
      // Runs after every onModuleDestroy: the drain of work (and terminus's graceful wait) comes after this.
      async beforeApplicationShutdown() {
        during = await this.health.check('work');
      }
    }
    const app = await boot({}, [Probe]);
    expect(await app.get(ConcurrencyHealthIndicator).check()).toEqual({ concurrency: { status: 'up' } });
    await app.close();
    expect(during).toMatchObject({ work: { status: 'down', failed: ['shutdown'] } });
  });

  it('reports down, naming the job, while a run goes on past its timeout', async () => {
    @Injectable()
    class Stuck {
      release!: () => void;
      @Interval(3_600_000, { name: 'stuck', timeout: 50 })
      run() {
        return new Promise<void>((resolve) => (this.release = resolve)); // ignores its signal
      }
    }
    const app = await boot({}, [Stuck]);
    const health = app.get(ConcurrencyHealthIndicator);
    try {
      const run = app.get(JobRegistry).trigger('stuck');
      run.catch(() => undefined);
      expect((await health.check()).concurrency.status).toBe('up');
      const deadline = Date.now() + 5000;
      let result = await health.check();
      while (result.concurrency.status === 'up' && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        result = await health.check();
      }
      expect(result.concurrency).toMatchObject({ status: 'down', failed: ['job:stuck'] });
      expect(result.concurrency['job:stuck']).toMatchObject({
        message: expect.stringContaining('past its 50 ms timeout'),
      });
      app.get(Stuck).release();
      await run.catch(() => undefined);
      const after = Date.now() + 5000;
      while ((await health.check()).concurrency.status !== 'up' && Date.now() < after) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect((await health.check()).concurrency.status).toBe('up');
    } finally {
      await app.close();
    }
  });
});

describe.runIf(redisAvailable)('ConcurrencyHealthIndicator with Redis (job lock and cache store)', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await RedisServer.start();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('is up, then down naming the Redis parts while Redis is stopped, then up again, through terminus', async () => {
    const lockClient = new Redis(redis.url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false });
    lockClient.on('error', () => undefined);
    await new Promise((resolve) => lockClient.once('ready', resolve));
    const app = await boot({
      jobs: { lock: new RedisJobLock(lockClient, { timeout: 500 }) },
      cache: { stores: [redisStore(redis.url)], storeTimeout: 500 },
    });
    const health = app.get(ConcurrencyHealthIndicator);
    const terminus = app.get(HealthCheckService);
    const check = () => terminus.check([() => health.check()]);
    try {
      const up = await check();
      expect(up.status).toBe('ok');
      expect(up.details.concurrency).toMatchObject({
        status: 'up',
        'jobs.lock': { status: 'up' },
        'cache.stores[0]': { status: 'up' },
      });

      await redis.stop();
      // terminus answers a down indicator with a ServiceUnavailableException (503) carrying the details.
      const down = await check().then(
        () => undefined,
        (error: { getResponse(): { status: string; error: Record<string, { failed: string[] }> } }) =>
          error.getResponse(),
      );
      expect(down?.status).toBe('error');
      expect(down?.error.concurrency.failed.sort()).toEqual(['cache.stores[0]', 'jobs.lock']);

      await redis.restart();
      const deadline = Date.now() + 10_000;
      let again = await check().catch(() => undefined);
      while (again?.status !== 'ok' && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        again = await check().catch(() => undefined);
      }
      expect(again?.status).toBe('ok');
    } finally {
      await app.close();
      lockClient.disconnect();
    }
  });
});
