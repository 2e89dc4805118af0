import type { INestApplication } from '@nestjs/common';
import { Injectable } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { Redis } from 'ioredis';
import {
  Cron,
  InMemoryJobLock,
  Interval,
  type JobContext,
  type JobLease,
  type JobLock,
  JobRegistry,
  RedisJobLock,
} from 'nestjs-concurrency';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';
import { bootJobs, closeFaked } from './utils/boot.js';

const T0 = new Date('2030-01-01T00:00:00.000Z').getTime();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs of one job across instances, to check that no two overlap. */
class Runs {
  active = 0;
  maxActive = 0;
  readonly spans: { instance: number; start: number; end: number; at: number }[] = [];

  async run(instance: number, at: Date, ms: number): Promise<void> {
    const start = Date.now();
    this.maxActive = Math.max(this.maxActive, ++this.active);
    await sleep(ms);
    this.active--;
    this.spans.push({ instance, start, end: Date.now(), at: at.getTime() });
  }
}

describe('an @Interval with a lock: one run per slot, whatever lock.ttl says (fake timers)', () => {
  beforeEach(() => vi.useFakeTimers({ now: T0 }));
  afterEach(() => vi.useRealTimers());

  it('runs each 5 min slot once on two instances booted 2 min apart, with the default 60 s lease ttl', async () => {
    const lock = new InMemoryJobLock();
    const slots: number[] = [];
    const apps: INestApplication[] = [];
    for (const instance of [0, 1]) {
      if (instance === 1) await vi.advanceTimersByTimeAsync(120_000);
      @Injectable()
      class Report {
        @Interval(300_000, { name: 'report', lock: true })
        run(ctx: JobContext) {
          slots.push(ctx.scheduledAt.getTime() - (ctx.scheduledAt.getTime() % 300_000) - T0);
        }
      }
      apps.push(await bootJobs([Report], { jobs: { lock } }));
    }
    await vi.advanceTimersByTimeAsync(30 * 60_000);
    // Instance 0 ticks at 5:00 ... 30:00, instance 1 at 7:00 ... 32:00: both in every slot, one run per slot.
    expect(slots).toEqual([1, 2, 3, 4, 5, 6].map((n) => n * 300_000));
    const skipped = apps.map((app) => app.get(JobRegistry).get('report').skipped);
    expect(skipped.reduce((a, b) => a + b)).toBe(6);
    for (const app of apps) await closeFaked(app);
  });
});

describe('lock: true keeps a job from overlapping itself across the cluster (fake timers)', () => {
  beforeEach(() => vi.useFakeTimers({ now: T0 }));
  afterEach(() => vi.useRealTimers());

  it('never runs a 1 s cron whose runs take 2.5 s on two instances at once', async () => {
    const lock = new InMemoryJobLock();
    const runs = new Runs();
    const apps: INestApplication[] = [];
    for (const instance of [0, 1]) {
      @Injectable()
      class Slow {
        @Cron('* * * * * *', { name: 'slow', lock: true })
        run(ctx: JobContext) {
          return runs.run(instance, ctx.scheduledAt, 2500);
        }
      }
      apps.push(await bootJobs([Slow], { jobs: { lock } }));
    }
    await vi.advanceTimersByTimeAsync(10_000);
    expect(runs.maxActive).toBe(1);
    // The run of 1 s holds until 3.5 s, so the ticks of 2 and 3 s are skipped cluster-wide; 4 s runs, and so on.
    expect(runs.spans.map((s) => s.at - T0)).toEqual([1000, 4000, 7000]);
    const registries = apps.map((app) => app.get(JobRegistry).get('slow'));
    expect(registries.reduce((n, info) => n + info.runs, 0)).toBe(4); // the run of 10 s is still going
    for (const app of apps) await closeFaked(app);
  });

  it("lets runs overlap across the cluster with overlap: 'allow'", async () => {
    const lock = new InMemoryJobLock();
    const runs = new Runs();
    const apps: INestApplication[] = [];
    for (const instance of [0, 1]) {
      @Injectable()
      class Slow {
        @Cron('* * * * * *', { name: 'slow', lock: true, overlap: 'allow' })
        run(ctx: JobContext) {
          return runs.run(instance, ctx.scheduledAt, 2500);
        }
      }
      apps.push(await bootJobs([Slow], { jobs: { lock } }));
    }
    await vi.advanceTimersByTimeAsync(5000);
    expect(runs.maxActive).toBe(3);
    for (const app of apps) await closeFaked(app);
  });

  it('gives the running lease back when the run ends, so the next tick runs on any instance', async () => {
    const lock = new InMemoryJobLock();
    @Injectable()
    class Quick {
      @Cron('* * * * * *', { name: 'quick', lock: true })
      async run() {
        await sleep(200);
      }
    }
    const app = await bootJobs([Quick], { jobs: { lock } });
    await vi.advanceTimersByTimeAsync(1100);
    expect(await lock.acquire('quick@running', 1000)).toBeNull();
    await vi.advanceTimersByTimeAsync(100);
    const lease = await lock.acquire('quick@running', 1000);
    expect(lease).not.toBeNull();
    await lease!.release();
    await vi.advanceTimersByTimeAsync(3000);
    expect(app.get(JobRegistry).get('quick')).toMatchObject({ runs: 4, skipped: 0 });
    await closeFaked(app);
  });
});

describe('fixed-rate @Interval on a monotonic clock (fake timers)', () => {
  beforeEach(() => vi.useFakeTimers({ now: T0 }));
  afterEach(() => vi.useRealTimers());

  @Injectable()
  class Ticker {
    ticks: number[] = [];
    @Interval(1000, { name: 'ticker' })
    run(ctx: JobContext) {
      this.ticks.push(ctx.scheduledAt.getTime());
    }
  }

  it('keeps its period when the wall clock steps back 10 min, naming ticks by the new wall clock', async () => {
    const app = await bootJobs([Ticker]);
    await vi.advanceTimersByTimeAsync(3000);
    vi.setSystemTime(Date.now() - 600_000);
    await vi.advanceTimersByTimeAsync(20_000);
    const { ticks } = app.get(Ticker);
    expect(ticks).toHaveLength(23);
    // After the step, ticks are named by the wall clock they fired at, 1 s apart.
    expect(ticks[3] - T0).toBe(4000 - 600_000);
    expect(ticks.slice(3).every((t, i, a) => i === 0 || t - a[i - 1] === 1000)).toBe(true);
    expect(app.get(JobRegistry).get('ticker')).toMatchObject({ runs: 23, skipped: 0 });
    await closeFaked(app);
  });

  it('counts no phantom skips when the wall clock steps forward', async () => {
    const app = await bootJobs([Ticker]);
    await vi.advanceTimersByTimeAsync(3000);
    vi.setSystemTime(Date.now() + 600_000);
    await vi.advanceTimersByTimeAsync(5000);
    expect(app.get(JobRegistry).get('ticker')).toMatchObject({ runs: 8, skipped: 0 });
    expect(app.get(Ticker).ticks.at(-1)! - T0).toBe(8000 + 600_000);
    expect(app.get(JobRegistry).get('ticker').nextRunAt).toEqual(new Date(T0 + 9000 + 600_000));
    await closeFaked(app);
  });
});

describe('pause, trigger and resume in every order (fake timers)', () => {
  beforeEach(() => vi.useFakeTimers({ now: T0 }));
  afterEach(() => vi.useRealTimers());

  it('re-arms a fixed-delay job resumed while a triggered run is going, once that run ends', async () => {
    @Injectable()
    class Sync {
      starts: number[] = [];
      @Interval(1000, { name: 'sync', mode: 'fixed-delay' })
      async run() {
        this.starts.push(Date.now() - T0);
        await sleep(500);
      }
    }
    const app = await bootJobs([Sync]);
    const registry = app.get(JobRegistry);
    registry.pause('sync');
    const run = registry.trigger('sync');
    registry.resume('sync');
    await vi.advanceTimersByTimeAsync(500);
    await run;
    expect(registry.get('sync').nextRunAt).toEqual(new Date(T0 + 1500));
    await vi.advanceTimersByTimeAsync(3000);
    // The triggered run at 0 ended at 500; then every 1000 after each end.
    expect(app.get(Sync).starts).toEqual([0, 1500, 3000]);
    await closeFaked(app);
  });

  it('does not run a tick that was waiting for its lock when the job is paused meanwhile, and gives the tick back', async () => {
    const grants: ((lease: JobLease | null) => void)[] = [];
    const released: string[] = [];
    const store: JobLock = {
      acquire: (key) =>
        new Promise((resolve) =>
          grants.push((lease) => resolve(lease && { ...lease, release: async () => void released.push(key) })),
        ),
    };
    @Injectable()
    class Guarded {
      calls = 0;
      @Interval(1000, { name: 'guarded', lock: { store, timeout: 60_000 } })
      run() {
        this.calls++;
      }
    }
    const app = await bootJobs([Guarded]);
    const registry = app.get(JobRegistry);
    const lease: JobLease = { token: 1, release: async () => {} };

    // Paused while waiting for the tick's lease.
    await vi.advanceTimersByTimeAsync(1000);
    registry.pause('guarded');
    grants.shift()!(lease);
    await vi.advanceTimersByTimeAsync(0);
    expect(app.get(Guarded).calls).toBe(0);
    expect(released).toEqual([`guarded@${new Date(T0 + 1000).toISOString()}`]);
    expect(grants).toHaveLength(0); // did not go on to the running lease

    // Paused while waiting for the running lease (resumed at 1000: the next tick is at 2000).
    registry.resume('guarded');
    await vi.advanceTimersByTimeAsync(1000);
    grants.shift()!(lease);
    await vi.advanceTimersByTimeAsync(0);
    registry.pause('guarded');
    grants.shift()!(lease);
    await vi.advanceTimersByTimeAsync(0);
    expect(app.get(Guarded).calls).toBe(0);
    expect(released.slice(1).sort()).toEqual([`guarded@${new Date(T0 + 2000).toISOString()}`, 'guarded@running']);
    expect(registry.get('guarded')).toMatchObject({ runs: 0, skipped: 2, running: 0 });
    await closeFaked(app);
  });
});

describe('a cron job fired by hand (SchedulerRegistry.getCronJob(name).fireOnTick())', () => {
  beforeEach(() => vi.useFakeTimers({ now: T0 }));
  afterEach(() => vi.useRealTimers());

  it('is named by the time it fired, not by the previous tick', async () => {
    @Injectable()
    class Hourly {
      ticks: number[] = [];
      @Cron('0 * * * * *', { name: 'minutely' })
      run(ctx: JobContext) {
        this.ticks.push(ctx.scheduledAt.getTime() - T0);
      }
    }
    const app = await bootJobs([Hourly]);
    await vi.advanceTimersByTimeAsync(90_000);
    void app.get(SchedulerRegistry).getCronJob('minutely').fireOnTick();
    await vi.advanceTimersByTimeAsync(30_000);
    expect(app.get(Hourly).ticks).toEqual([60_000, 90_000, 120_000]);
    await closeFaked(app);
  });

  it('runs with a lock instead of being skipped as a duplicate of the previous tick', async () => {
    const lock = new InMemoryJobLock();
    @Injectable()
    class Hourly {
      ticks: number[] = [];
      @Cron('0 * * * * *', { name: 'minutely', lock: true })
      run(ctx: JobContext) {
        this.ticks.push(ctx.scheduledAt.getTime() - T0);
      }
    }
    const app = await bootJobs([Hourly], { jobs: { lock } });
    await vi.advanceTimersByTimeAsync(90_000);
    void app.get(SchedulerRegistry).getCronJob('minutely').fireOnTick();
    await vi.advanceTimersByTimeAsync(30_000);
    expect(app.get(Hourly).ticks).toEqual([60_000, 90_000, 120_000]);
    expect(app.get(JobRegistry).get('minutely')).toMatchObject({ runs: 3, skipped: 0 });
    await closeFaked(app);
  });
});

describe.skipIf(!redisAvailable)('time and coordination on a real redis-server', () => {
  let server: RedisServer;
  const clients: Redis[] = [];

  /** One instance's lock: its own ioredis client, the key prefix shared by the cluster. */
  async function lockOf(prefix: string): Promise<RedisJobLock> {
    const client = new Redis(server.url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true });
    client.on('error', () => {});
    await client.connect();
    clients.push(client);
    return new RedisJobLock(client, { prefix });
  }

  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await server.stop();
  });

  it('runs each slot of a 3 s interval once with lock.ttl 1000 and instances booted 1.5 s apart', async () => {
    const slots: number[] = [];
    const apps: INestApplication[] = [];
    for (const instance of [0, 1]) {
      if (instance === 1) await sleep(1500);
      @Injectable()
      class Poll {
        @Interval(3000, { name: 'poll: every 3 s', lock: { ttl: 1000 } })
        run(ctx: JobContext) {
          slots.push(ctx.scheduledAt.getTime() - (ctx.scheduledAt.getTime() % 3000));
        }
      }
      apps.push(await bootJobs([Poll], { jobs: { lock: await lockOf('{slots}:') } }));
    }
    await sleep(9500);
    await Promise.all(apps.map((app) => app.close()));
    // Both instances tick in every slot (1.5 s apart); each slot ran once.
    expect(slots.length).toBeGreaterThanOrEqual(3);
    expect(new Set(slots).size).toBe(slots.length);
    const skipped = apps.map((app) => app.get(JobRegistry).get('poll: every 3 s').skipped);
    expect(skipped.reduce((a, b) => a + b)).toBeGreaterThanOrEqual(2);
  }, 20_000);

  it('never runs a 1 s cron whose runs take 2.5 s on two instances at once', async () => {
    const runs = new Runs();
    const apps: INestApplication[] = [];
    for (const instance of [0, 1]) {
      @Injectable()
      class Slow {
        @Cron('* * * * * *', { name: 'slow', lock: true })
        run(ctx: JobContext) {
          return runs.run(instance, ctx.scheduledAt, 2500);
        }
      }
      apps.push(await bootJobs([Slow], { jobs: { lock: await lockOf('{overlap}:') } }));
    }
    await vi.waitFor(() => expect(runs.spans.length).toBeGreaterThanOrEqual(3), { timeout: 12_000, interval: 100 });
    await Promise.all(apps.map((app) => app.close()));
    expect(runs.maxActive).toBe(1);
    const spans = [...runs.spans].sort((a, b) => a.start - b.start);
    for (let i = 1; i < spans.length; i++) expect(spans[i].start).toBeGreaterThanOrEqual(spans[i - 1].end);
  }, 20_000);
});
