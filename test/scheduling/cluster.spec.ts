import { AsyncLocalStorage } from 'node:async_hooks';
import type { INestApplication } from '@nestjs/common';
import { Injectable } from '@nestjs/common';
import { Redis } from 'ioredis';
import { Cron, type JobContext, JobRegistry, RedisJobLock } from 'nestjs-concurrency';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';
import { bootJobs } from './utils/boot.js';

interface Run {
  instance: number;
  scheduledAt: number;
  token: number | undefined;
}

/** Three app instances in one process, each with its own ioredis client, sharing one Redis. */
async function bootCluster(server: RedisServer, runs: Run[]) {
  const apps: INestApplication[] = [];
  const clients: Redis[] = [];
  for (let instance = 0; instance < 3; instance++) {
    // Fail fast while Redis is down: no offline queue, one retry; and an 'error' listener against log noise.
    const client = new Redis(server.url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true });
    client.on('error', () => {});
    await client.connect();
    clients.push(client);
    @Injectable()
    class Billing {
      @Cron('* * * * * *', { name: 'billing', lock: true })
      charge(ctx: JobContext) {
        runs.push({ instance, scheduledAt: ctx.scheduledAt.getTime(), token: ctx.fencingToken });
      }
    }
    apps.push(await bootJobs([Billing], { jobs: { lock: new RedisJobLock(client, { timeout: 300 }) } }));
  }
  return {
    apps,
    close: async () => {
      await Promise.all(apps.map((app) => app.close()));
      for (const client of clients) client.disconnect();
    },
  };
}

function countPerTick(runs: Run[]): Map<number, number> {
  const counts = new Map<number, number>();
  for (const run of runs) counts.set(run.scheduledAt, (counts.get(run.scheduledAt) ?? 0) + 1);
  return counts;
}

describe.skipIf(!redisAvailable)('cluster: one run per tick across instances (real redis-server)', () => {
  let server: RedisServer;

  beforeEach(async () => {
    server = await RedisServer.start();
  });
  afterEach(async () => {
    await server.stop();
  });

  it('runs every per-second tick exactly once across three instances', async () => {
    const runs: Run[] = [];
    const cluster = await bootCluster(server, runs);
    await vi.waitFor(() => expect(countPerTick(runs).size).toBeGreaterThanOrEqual(5), {
      timeout: 9000,
      interval: 100,
    });
    await cluster.close();

    const counts = countPerTick(runs);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    expect(runs).toHaveLength(counts.size);
    // Ticks are whole seconds, and none was lost between the first and the last one.
    const ticks = [...counts.keys()].sort((a, b) => a - b);
    expect(ticks.every((t) => t % 1000 === 0)).toBe(true);
    expect(ticks.at(-1)! - ticks[0]).toBe((ticks.length - 1) * 1000);
    // Fencing tokens increase with the ticks.
    const tokens = [...runs].sort((a, b) => a.scheduledAt - b.scheduledAt).map((r) => r.token!);
    expect(tokens).toEqual([...tokens].sort((a, b) => a - b));
    expect(new Set(tokens).size).toBe(tokens.length);
  }, 15_000);

  it('never runs a tick twice when Redis goes down mid-way, and app.close() stays prompt', async () => {
    const runs: Run[] = [];
    const cluster = await bootCluster(server, runs);
    await vi.waitFor(() => expect(countPerTick(runs).size).toBeGreaterThanOrEqual(2), {
      timeout: 6000,
      interval: 100,
    });
    await server.stop();
    const downAt = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const runsWhileDown = runs.filter((r) => r.scheduledAt > downAt + 100).length;
    const lockFailures = cluster.apps.map((app) => app.get(JobRegistry).get('billing').lockFailures);

    const closeStarted = Date.now();
    await cluster.close();
    expect(Date.now() - closeStarted).toBeLessThan(2000);

    expect(runsWhileDown).toBe(0);
    expect(lockFailures.reduce((a, b) => a + b)).toBeGreaterThanOrEqual(3);
    expect([...countPerTick(runs).values()].every((n) => n === 1)).toBe(true);
  }, 15_000);
});

/**
 * Skewed clocks in one process: `Date.now()` and `new Date()` add the offset of the instance whose async context
 * runs the code (timers and awaits keep the context they were created in, so each app keeps its own clock). cron
 * reads the time through luxon, which calls `Date.now()`. The monotonic clock is shared, as on real machines.
 */
function skewedClocks() {
  const RealDate = Date;
  const offset = new AsyncLocalStorage<number>();
  class SkewedDate extends RealDate {
    constructor(...args: unknown[]) {
      if (args.length === 0) super(RealDate.now() + (offset.getStore() ?? 0));
      else super(...(args as [number]));
    }
    static override now(): number {
      return RealDate.now() + (offset.getStore() ?? 0);
    }
  }
  globalThis.Date = SkewedDate as DateConstructor;
  return {
    run: <T>(ms: number, fn: () => T): T => offset.run(ms, fn),
    restore: () => {
      globalThis.Date = RealDate;
    },
  };
}

describe.skipIf(!redisAvailable)('cluster: instances whose clocks disagree (real redis-server)', () => {
  let server: RedisServer;

  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => {
    await server.stop();
  });

  it('runs every tick once across three instances with clocks 0, +1.5 s and -0.7 s, with increasing tokens', async () => {
    const clocks = skewedClocks();
    const runs: Run[] = [];
    const apps: INestApplication[] = [];
    const clients: Redis[] = [];
    try {
      for (const [instance, skew] of [0, 1500, -700].entries()) {
        await clocks.run(skew, async () => {
          const client = new Redis(server.url, {
            maxRetriesPerRequest: 1,
            enableOfflineQueue: false,
            lazyConnect: true,
          });
          client.on('error', () => {});
          await client.connect();
          clients.push(client);
          @Injectable()
          class Billing {
            @Cron('* * * * * *', { name: 'billing: skewed clocks', lock: true })
            charge(ctx: JobContext) {
              runs.push({ instance, scheduledAt: ctx.scheduledAt.getTime(), token: ctx.fencingToken });
            }
          }
          apps.push(await bootJobs([Billing], { jobs: { lock: new RedisJobLock(client, { timeout: 300 }) } }));
        });
      }
      await vi.waitFor(() => expect(countPerTick(runs).size).toBeGreaterThanOrEqual(5), {
        timeout: 9000,
        interval: 100,
      });
      // Let the slowest clock (-0.7 s) fire the last tick too.
      await new Promise((resolve) => setTimeout(resolve, 1000));
    } finally {
      await Promise.all(apps.map((app) => app.close()));
      for (const client of clients) client.disconnect();
      clocks.restore();
    }
    const counts = countPerTick(runs);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    const ticks = [...counts.keys()].sort((a, b) => a - b);
    expect(ticks.every((t) => t % 1000 === 0)).toBe(true);
    expect(ticks.at(-1)! - ticks[0]).toBe((ticks.length - 1) * 1000);
    // Fencing tokens increase in the order the leases were taken, whichever instance took them. (Not in the order of
    // the ticks' names: at first the +1.5 s instance takes ticks the others have not reached yet.)
    const tokens = runs.map((r) => r.token!);
    expect(tokens).toEqual([...tokens].sort((a, b) => a - b));
    expect(new Set(tokens).size).toBe(tokens.length);
    // Every instance fired, and the ticks they shared were run by one of them only (the others skipped them).
    const infos = apps.map((app) => app.get(JobRegistry).get('billing: skewed clocks'));
    expect(infos.every((info) => info.runs + info.skipped >= 2)).toBe(true);
    expect(infos.reduce((n, info) => n + info.skipped, 0)).toBeGreaterThanOrEqual(3);
  }, 20_000);
});
