import type { INestApplication } from '@nestjs/common';
import { Injectable } from '@nestjs/common';
import { Redis } from 'ioredis';
import { Interval, type JobContext, JobRegistry, RedisJobLock } from 'nestjs-concurrency';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';
import { bootJobs } from './utils/boot.js';

describe.skipIf(!redisAvailable)('run history with RedisJobLock (real redis-server)', () => {
  let server: RedisServer;
  const clients: Redis[] = [];
  const apps: INestApplication[] = [];

  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => {
    await Promise.all(apps.map((app) => app.close()));
    for (const client of clients) client.disconnect();
    await server.stop();
  });

  async function boot(instance: string, history?: number) {
    const client = new Redis(server.url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true });
    client.on('error', () => {});
    await client.connect();
    clients.push(client);
    @Injectable()
    class Sync {
      @Interval(200, { name: 'sync', lock: true })
      run(ctx: JobContext) {
        if (ctx.scheduledAt.getTime() % 400 === 0) throw new Error('even slot');
      }
    }
    const app = await bootJobs([Sync], { jobs: { lock: new RedisJobLock(client), instance, history } });
    apps.push(app);
    return app;
  }

  it('is the cluster history: every instance sees every run, capped, and it survives a restart', async () => {
    const a = await boot('a', 6);
    const b = await boot('b', 6);
    // The instance that ticks first in each slot takes it; close it, and the other takes the ticks from then on.
    await vi.waitFor(async () => expect(await b.get(JobRegistry).history('sync')).toHaveLength(3), {
      timeout: 15_000,
      interval: 100,
    });
    const first = (await b.get(JobRegistry).history('sync'))[0].instance;
    await apps.splice(first === 'a' ? 0 : 1, 1)[0].close();
    const survivor = first === 'a' ? b : a;
    await vi.waitFor(
      async () => {
        const runs = await survivor.get(JobRegistry).history('sync');
        expect(new Set(runs.map((r) => r.instance))).toEqual(new Set(['a', 'b']));
        expect(runs).toHaveLength(6);
      },
      { timeout: 15_000, interval: 100 },
    );
    const fromA = await survivor.get(JobRegistry).history('sync');
    // Newest first, each tick once.
    const ticks = fromA.map((r) => r.scheduledAt.getTime());
    expect(ticks).toEqual([...ticks].sort((x, y) => y - x));
    expect(new Set(ticks).size).toBe(ticks.length);
    for (const run of fromA) {
      expect(run.outcome).toBe(run.scheduledAt.getTime() % 400 === 0 ? 'failed' : 'completed');
      if (run.outcome === 'failed') expect(run.error).toBe('even slot');
    }
    // The list in Redis is capped too (LTRIM), not only what history() returns.
    expect(await clients[0].llen('{nestjs-concurrency:jobs}:history:sync')).toBe(6);

    // Every instance goes away; a new one (no run yet) sees the runs.
    await Promise.all(apps.splice(0).map((app) => app.close()));
    const latest = fromA[0].scheduledAt.getTime();
    const c = await boot('c', 6);
    await c.get(JobRegistry).pause('sync');
    const after = await c.get(JobRegistry).history('sync');
    expect(after.length).toBe(6);
    expect(after.some((r) => r.scheduledAt.getTime() === latest)).toBe(true);
  }, 30_000);

  it('keeps and returns none with jobs.history: 0, also when the list in Redis holds runs from before', async () => {
    const e = await boot('e', 0);
    expect(await clients[0].llen('{nestjs-concurrency:jobs}:history:sync')).toBeGreaterThan(0);
    expect(await e.get(JobRegistry).history('sync')).toEqual([]);
    expect(await e.get(JobRegistry).history('sync', { limit: 3 })).toEqual([]);
  });

  it('rejects history() with the lock error when Redis is down, and never fails a run for it', async () => {
    const d = await boot('d');
    const registry = d.get(JobRegistry);
    // The first test left the job paused for the cluster (stored in Redis): resume it, and let that land.
    registry.resume('sync');
    await vi.waitFor(async () =>
      expect(await clients[0].hget('{nestjs-concurrency:jobs}:control:paused', 'sync')).toBe('0'),
    );
    await server.stop();
    try {
      await expect(registry.history('sync')).rejects.toThrow();
      // Runs go on failing their lock (skipped), not the process; the lock failures are counted.
      await vi.waitFor(() => expect(registry.get('sync').lockFailures).toBeGreaterThan(0), { timeout: 5000 });
    } finally {
      await server.restart();
    }
  }, 20_000);
});
