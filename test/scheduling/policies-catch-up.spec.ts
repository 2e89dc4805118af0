import { Injectable } from '@nestjs/common';
import { Redis } from 'ioredis';
import { SchedulerRegistry } from '@nestjs/schedule';
import {
  ConcurrencyHealthIndicator,
  Cron,
  InMemoryJobLock,
  Interval,
  type JobContext,
  type JobLock,
  RedisJobLock,
} from 'nestjs-concurrency';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';
import { bootError, bootJobs, closeFaked } from './utils/boot.js';

const T0 = new Date('2030-01-01T00:00:00.000Z').getTime();
const MIN = 60_000;

function minutely(runs: number[], catchUp?: { window: number; mode?: 'last' | 'all' }) {
  @Injectable()
  class Report {
    @Cron('0 * * * * *', { name: 'report', lock: true, ...(catchUp ? { catchUp } : {}) })
    run(ctx: JobContext) {
      runs.push(ctx.scheduledAt.getTime());
    }
  }
  return Report;
}

describe('catchUp (fake timers, InMemoryJobLock shared by two app lifetimes)', () => {
  beforeEach(() => vi.useFakeTimers({ now: T0 + 30_000 }));
  afterEach(() => vi.useRealTimers());

  /** Runs the job for 2 ticks, closes, jumps 3 ticks (a deploy gap), boots again; returns the runs of the second boot. */
  async function deployGap(catchUp?: { window: number; mode?: 'last' | 'all' }): Promise<number[]> {
    const lock = new InMemoryJobLock();
    const first: number[] = [];
    const app = await bootJobs([minutely(first, catchUp)], { jobs: { lock } });
    await vi.advanceTimersByTimeAsync(2 * MIN);
    expect(first).toEqual([T0 + MIN, T0 + 2 * MIN]);
    await closeFaked(app);
    vi.setSystemTime(T0 + 5 * MIN + 30_000); // ticks 3, 4, 5 missed
    const second: number[] = [];
    const again = await bootJobs([minutely(second, catchUp)], { jobs: { lock } });
    await vi.advanceTimersByTimeAsync(1000);
    await closeFaked(again);
    return second;
  }

  it("'last' runs once, for the latest missed tick", async () => {
    expect(await deployGap({ window: 10 * MIN })).toEqual([T0 + 5 * MIN]);
  });

  it("'all' runs each missed tick once, oldest first", async () => {
    expect(await deployGap({ window: 10 * MIN, mode: 'all' })).toEqual([T0 + 3 * MIN, T0 + 4 * MIN, T0 + 5 * MIN]);
  });

  it('never runs ticks older than the window', async () => {
    expect(await deployGap({ window: 2 * MIN + 1000, mode: 'all' })).toEqual([T0 + 4 * MIN, T0 + 5 * MIN]);
  });

  it('changes nothing without catchUp', async () => {
    expect(await deployGap()).toEqual([]);
  });

  it('fails boot naming the job and option without a lock, or on a bad window or mode', async () => {
    @Injectable()
    class NoLock {
      @Cron('0 * * * * *', { catchUp: { window: MIN } })
      run() {}
    }
    const error = await bootError([NoLock]);
    expect(error.message).toContain('NoLock.run()');
    expect(error.message).toContain('catchUp');
    expect(error.message).toContain('lock');

    @Injectable()
    class BadWindow {
      @Cron('0 * * * * *', { lock: true, catchUp: { window: -5 } })
      run() {}
    }
    expect((await bootError([BadWindow], { jobs: { lock: new InMemoryJobLock() } })).message).toContain(
      'Invalid job option "catchUp.window" on BadWindow.run()',
    );

    @Injectable()
    class BadMode {
      @Interval(1000, { lock: true, catchUp: { window: MIN, mode: 'some' as 'all' } })
      run() {}
    }
    expect((await bootError([BadMode], { jobs: { lock: new InMemoryJobLock() } })).message).toContain(
      'Invalid job option "catchUp.mode" on BadMode.run()',
    );

    @Injectable()
    class Delay {
      @Interval(1000, { mode: 'fixed-delay', catchUp: { window: MIN } })
      run() {}
    }
    expect((await bootError([Delay])).message).toContain('"catchUp" on Delay.run()');

    const bare: JobLock = { acquire: async () => null };
    @Injectable()
    class BareStore {
      @Cron('0 * * * * *', { lock: true, catchUp: { window: MIN } })
      run() {}
    }
    expect((await bootError([BareStore], { jobs: { lock: bare } })).message).toContain('lastTick()');
  });
});

describe.skipIf(!redisAvailable)('catchUp across instances (real redis-server)', () => {
  let server: RedisServer;
  const clients: Redis[] = [];

  beforeEach(async () => {
    server = await RedisServer.start();
  });
  afterEach(async () => {
    for (const client of clients.splice(0)) client.disconnect();
    await server.stop();
  });

  const client = async () => {
    const redis = new Redis(server.url, { maxRetriesPerRequest: 1, lazyConnect: true });
    redis.on('error', () => {});
    await redis.connect();
    clients.push(redis);
    return redis;
  };

  /** Hourly slots: the test never sees a live tick; the last tick is seeded 3 slots before the current one. */
  async function twoInstances(mode: 'last' | 'all') {
    const HOUR = 3_600_000;
    const runs: Array<{ instance: number; at: number }> = [];
    const seedAt = Math.floor(Date.now() / HOUR) * HOUR - 3 * HOUR;
    await new RedisJobLock(await client()).recordTick('hourly', seedAt);
    const boot = async (instance: number) => {
      @Injectable()
      class Hourly {
        @Interval(HOUR, { name: 'hourly', lock: true, catchUp: { window: 24 * HOUR, mode } })
        async run(ctx: JobContext) {
          runs.push({ instance, at: ctx.scheduledAt.getTime() });
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
      return bootJobs([Hourly], { jobs: { lock: new RedisJobLock(await client()) } });
    };
    const before = Math.floor(Date.now() / HOUR) * HOUR;
    const apps = await Promise.all([boot(0), boot(1)]);
    const expected = mode === 'all' ? [seedAt + HOUR, seedAt + 2 * HOUR, seedAt + 3 * HOUR] : [seedAt + 3 * HOUR];
    await vi.waitFor(() => expect(runs.length).toBeGreaterThanOrEqual(expected.length), { timeout: 10_000 });
    // Any extra run would show within a poll or two.
    await new Promise((resolve) => setTimeout(resolve, 500));
    await Promise.all(apps.map((app) => app.close()));
    const after = Math.floor(Date.now() / HOUR) * HOUR;
    return { runs, expected, crossedHour: before !== after };
  }

  it("'all': 3 missed ticks run once each, in order, across two instances booting together", async () => {
    const { runs, expected, crossedHour } = await twoInstances('all');
    if (crossedHour) return; // the slots moved under the test (once an hour)
    expect(runs.map((r) => r.at)).toEqual(expected);
  }, 20_000);

  it("'last': one run for the latest missed tick across two instances", async () => {
    const { runs, expected, crossedHour } = await twoInstances('last');
    if (crossedHour) return;
    expect(runs.map((r) => r.at)).toEqual(expected);
  }, 20_000);

  it('keeps the last tick in Redis across a restart of the only instance', async () => {
    const runs: number[] = [];
    @Injectable()
    class Fast {
      @Interval(200, { name: 'fast', lock: true, catchUp: { window: 60_000, mode: 'all' } })
      run(ctx: JobContext) {
        runs.push(ctx.scheduledAt.getTime());
      }
    }
    const app = await bootJobs([Fast], { jobs: { lock: new RedisJobLock(await client()) } });
    await vi.waitFor(() => expect(runs.length).toBeGreaterThanOrEqual(2), { timeout: 10_000 });
    await app.close();
    await new Promise((resolve) => setTimeout(resolve, 1000)); // the app is down: about 5 slots pass
    const again = await bootJobs([Fast], { jobs: { lock: new RedisJobLock(await client()) } });
    await vi.waitFor(() => expect(runs.length).toBeGreaterThanOrEqual(12), { timeout: 10_000 });
    await again.close();
    // Every 200 ms slot from the first run to the last ran exactly once: the gap was caught up.
    const slots = runs.map((t) => t - (t % 200));
    expect(new Set(slots).size).toBe(slots.length);
    const sorted = [...slots].sort((a, b) => a - b);
    expect(sorted.at(-1)! - sorted[0]).toBe((sorted.length - 1) * 200);
  }, 30_000);
});

describe('overdue jobs in ConcurrencyHealthIndicator (fake timers)', () => {
  beforeEach(() => vi.useFakeTimers({ now: T0 }));
  afterEach(() => vi.useRealTimers());

  it('reports down, naming the job, when its next run is late by more than one period plus its timeout', async () => {
    @Injectable()
    class Ticker {
      @Interval(1000, { name: 'ticker', timeout: 500 })
      run() {}
    }
    const app = await bootJobs([Ticker]);
    const health = app.get(ConcurrencyHealthIndicator);
    await vi.advanceTimersByTimeAsync(2500);
    expect((await health.check()).concurrency.status).toBe('up');
    // The timer is lost (cleared by someone): the job silently stops.
    clearTimeout(app.get(SchedulerRegistry).getInterval('ticker') as ReturnType<typeof setTimeout>);
    await vi.advanceTimersByTimeAsync(2000); // 1500 ms late: within 1000 + 500
    expect((await health.check()).concurrency.status).toBe('up');
    await vi.advanceTimersByTimeAsync(100);
    const result = (await health.check()).concurrency;
    expect(result.status).toBe('down');
    expect(result['job:ticker']).toMatchObject({ status: 'down' });
    expect(String((result['job:ticker'] as { message: string }).message)).toContain('"ticker"');
    await closeFaked(app);
  });
});
