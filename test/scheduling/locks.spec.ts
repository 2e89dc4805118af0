import { Injectable } from '@nestjs/common';
import { Redis } from 'ioredis';
import {
  Cron,
  InMemoryJobLock,
  Interval,
  type JobContext,
  type JobLease,
  type JobLock,
  JobRegistry,
  LockTimeoutError,
  RedisJobLock,
} from 'nestjs-concurrency';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';
import { bootJobs, closeFaked, RecordingLogger } from './utils/boot.js';

const T0 = new Date('2030-01-01T00:00:00.000Z').getTime();

describe('InMemoryJobLock', () => {
  beforeEach(() => vi.useFakeTimers({ now: T0 }));
  afterEach(() => vi.useRealTimers());

  it('grants a key to one owner until its TTL expires, with increasing fencing tokens', async () => {
    const lock = new InMemoryJobLock();
    const first = await lock.acquire('job@t1', 1000);
    expect(first?.token).toBeGreaterThan(0);
    expect(await lock.acquire('job@t1', 1000)).toBeNull();
    const other = await lock.acquire('job@t2', 1000);
    expect(other!.token).toBeGreaterThan(first!.token);
    vi.advanceTimersByTime(1000);
    const again = await lock.acquire('job@t1', 1000);
    expect(again!.token).toBeGreaterThan(other!.token);
  });

  it('releases and extends only for the current owner (compare-and-set)', async () => {
    const lock = new InMemoryJobLock();
    const stale = (await lock.acquire('k', 100))!;
    vi.advanceTimersByTime(100);
    const owner = (await lock.acquire('k', 1000))!;
    await stale.release();
    expect(await stale.extend!(1000)).toBe(false);
    expect(await lock.acquire('k', 1000)).toBeNull();
    expect(await owner.extend!(5000)).toBe(true);
    vi.advanceTimersByTime(4000);
    expect(await lock.acquire('k', 1000)).toBeNull();
    await owner.release();
    expect(await lock.acquire('k', 1000)).not.toBeNull();
  });
});

describe('jobs with a lock (fake timers, shared in-memory lock)', () => {
  beforeEach(() => vi.useFakeTimers({ now: T0 }));
  afterEach(() => vi.useRealTimers());

  it('runs each cron tick on one of three instances, with a fencing token', async () => {
    const runs: { instance: number; at: number; token?: number }[] = [];
    const lock = new InMemoryJobLock();
    const apps = [];
    for (let instance = 0; instance < 3; instance++) {
      @Injectable()
      class Report {
        @Cron('* * * * * *', { name: 'report', lock: true })
        run(ctx: JobContext) {
          runs.push({ instance, at: ctx.scheduledAt.getTime() - T0, token: ctx.fencingToken });
        }
      }
      apps.push(await bootJobs([Report], { jobs: { lock } }));
    }
    await vi.advanceTimersByTimeAsync(5000);
    expect(runs.map((r) => r.at)).toEqual([1000, 2000, 3000, 4000, 5000]);
    expect(runs.every((r) => typeof r.token === 'number')).toBe(true);
    const skipped = apps.map((app) => app.get(JobRegistry).get('report').skipped);
    expect(skipped.reduce((a, b) => a + b)).toBe(10);
    for (const app of apps) await closeFaked(app);
  });

  it('keeps the lease after the run (it expires by TTL) so a late instance cannot take the tick again', async () => {
    const lock = new InMemoryJobLock();
    @Injectable()
    class Quick {
      @Interval(1000, { name: 'quick', lock: { ttl: 30_000 } })
      run() {}
    }
    const app = await bootJobs([Quick], { jobs: { lock } });
    await vi.advanceTimersByTimeAsync(1000);
    expect(app.get(JobRegistry).get('quick').runs).toBe(1);
    expect(await lock.acquire(`quick@${new Date(T0 + 1000).toISOString()}`, 1000)).toBeNull();
    await closeFaked(app);
  });

  it('extends the tick lease (never shortening it) and the running lease while a run outlives its TTL', async () => {
    const extendTick = vi.fn(async () => true);
    const extendRun = vi.fn(async () => true);
    const store: JobLock = {
      acquire: async (key) => ({
        token: 7,
        release: async () => {},
        extend: key.endsWith('@running') ? extendRun : extendTick,
      }),
    };
    @Injectable()
    class Long {
      token?: number;
      @Interval(10_000, { name: 'long', lock: { store, ttl: 1000 } })
      async run(ctx: JobContext) {
        this.token = ctx.fencingToken;
        await new Promise((resolve) => setTimeout(resolve, 2600));
      }
    }
    const app = await bootJobs([Long]);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(app.get(Long).token).toBe(7);
    await vi.advanceTimersByTimeAsync(2600);
    // Every ttl/2 while running: at +500, +1000, ..., +2500. The running lease by ttl; the tick's lease to the end of
    // its slot (T0 + 20,000) plus ttl, as it was taken.
    expect(extendRun.mock.calls).toEqual([[1000], [1000], [1000], [1000], [1000]]);
    expect(extendTick.mock.calls).toEqual([[10_500], [10_000], [9500], [9000], [8500]]);
    await vi.advanceTimersByTimeAsync(5000);
    expect(extendRun).toHaveBeenCalledTimes(5);
    expect(extendTick).toHaveBeenCalledTimes(5);
    await closeFaked(app);
  });

  it("lets the job's lock.timeout govern a RedisJobLock: a slow answer within it still runs the tick", async () => {
    // A Redis that answers every call after 800 ms (acquire grants token 1).
    const slow = { eval: () => new Promise<unknown>((resolve) => setTimeout(resolve, 800, 1)) };
    @Injectable()
    class Patient {
      tokens: (number | undefined)[] = [];
      @Interval(5000, { name: 'patient', lock: { timeout: 1500 } })
      run(ctx: JobContext) {
        this.tokens.push(ctx.fencingToken);
      }
    }
    const app = await bootJobs([Patient], { jobs: { lock: new RedisJobLock(slow) } });
    // Two calls of 800 ms each: the tick's lease, then the running lease.
    await vi.advanceTimersByTimeAsync(6600);
    expect(app.get(Patient).tokens).toEqual([1]);
    expect(app.get(JobRegistry).get('patient')).toMatchObject({ runs: 1, lockFailures: 0 });
    await closeFaked(app);
  });

  it('runs each interval tick once across instances booted at different moments (epoch-aligned slots)', async () => {
    const runs: { instance: number; slot: number }[] = [];
    const lock = new InMemoryJobLock();
    const apps = [];
    // Boots at +0, +300 and +700 ms: each instance ticks on its own phase, the lock key names the shared slot.
    for (const [instance, offset] of [0, 300, 400].entries()) {
      await vi.advanceTimersByTimeAsync(offset);
      @Injectable()
      class Sync {
        @Interval(1000, { name: 'sync', lock: true })
        run(ctx: JobContext) {
          runs.push({ instance, slot: ctx.scheduledAt.getTime() - T0 });
        }
      }
      apps.push(await bootJobs([Sync], { jobs: { lock } }));
    }
    // Now at +700; the last instance ticks at 1700 ... 5700.
    await vi.advanceTimersByTimeAsync(5000);
    const slots = runs.map((r) => r.slot - (r.slot % 1000));
    expect(slots).toEqual([1000, 2000, 3000, 4000, 5000]);
    const skipped = apps.map((app) => app.get(JobRegistry).get('sync').skipped);
    expect(skipped.reduce((a, b) => a + b)).toBe(10);
    for (const app of apps) await closeFaked(app);
  });

  it('gives a lease back when the app closes between acquiring it and starting the run', async () => {
    let grant!: (lease: JobLease) => void;
    const release = vi.fn(async () => {});
    const store: JobLock = { acquire: () => new Promise<JobLease | null>((resolve) => (grant = resolve)) };
    @Injectable()
    class Late {
      calls = 0;
      @Interval(1000, { name: 'late', lock: { store, timeout: 60_000 } })
      run() {
        this.calls++;
      }
    }
    const app = await bootJobs([Late]);
    await vi.advanceTimersByTimeAsync(1000);
    await closeFaked(app);
    grant({ token: 1, release });
    await vi.advanceTimersByTimeAsync(0);
    expect(app.get(Late).calls).toBe(0);
    // Not run here: another instance may still take the tick.
    expect(release).toHaveBeenCalledTimes(1);
  });

  it('bounds every extend call by lock.timeout: a hung extend is logged and retried, the run goes on', async () => {
    const extend = vi.fn(() => new Promise<boolean>(() => {}));
    const store: JobLock = { acquire: async () => ({ token: 3, release: async () => {}, extend }) };
    @Injectable()
    class Long {
      ended = false;
      @Interval(10_000, { name: 'long', lock: { store, ttl: 1000, timeout: 100 } })
      async run() {
        await new Promise((resolve) => setTimeout(resolve, 2600));
        this.ended = true;
      }
    }
    const logger = new RecordingLogger();
    const app = await bootJobs([Long], {}, logger);
    await vi.advanceTimersByTimeAsync(12_600);
    expect(app.get(Long).ended).toBe(true);
    // Tried every ttl/2 (at +500 ... +2500) for both leases (the tick's and the running one) although none
    // answered; each try gave up after 100 ms.
    expect(extend).toHaveBeenCalledTimes(10);
    const warnings = logger.warnings.filter((m) => m.includes('"long" could not extend its lease'));
    expect(warnings).toHaveLength(10);
    expect(warnings[0]).toContain('did not answer within 100 ms');
    expect(app.get(JobRegistry).get('long')).toMatchObject({ runs: 1, failures: 0, running: 0 });
    await closeFaked(app);
  });

  it('skips the tick, counts and logs it when the lock store fails or hangs; never runs it', async () => {
    let mode: 'fail' | 'hang' = 'fail';
    const store: JobLock = {
      acquire: () =>
        mode === 'fail' ? Promise.reject(new Error('store down')) : new Promise<JobLease | null>(() => {}),
    };
    @Injectable()
    class Guarded {
      calls = 0;
      @Interval(5000, { name: 'guarded', lock: { store, timeout: 300 } })
      run() {
        this.calls++;
      }
    }
    const logger = new RecordingLogger();
    const app = await bootJobs([Guarded], {}, logger);
    await vi.advanceTimersByTimeAsync(5000);
    mode = 'hang';
    await vi.advanceTimersByTimeAsync(5300);
    expect(app.get(Guarded).calls).toBe(0);
    expect(app.get(JobRegistry).get('guarded')).toMatchObject({ runs: 0, skipped: 2, lockFailures: 2 });
    expect(logger.warnings.filter((m) => m.includes('"guarded"') && m.includes('lock store failed'))).toHaveLength(2);
    expect(logger.warnings[1]).toContain('did not answer within 300 ms');
    await closeFaked(app);
  });
});

describe.skipIf(!redisAvailable)('RedisJobLock (real redis-server)', () => {
  let server: RedisServer;
  let redis: Redis;

  beforeAll(async () => {
    server = await RedisServer.start();
    redis = new Redis(server.url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true });
    redis.on('error', () => {});
    await redis.connect();
  });
  afterAll(async () => {
    redis.disconnect();
    await server.stop();
  });

  it('grants a tick once, keeps the lease for its TTL and takes fencing tokens from INCR', async () => {
    const lock = new RedisJobLock(redis, { prefix: 'a:' });
    const first = await lock.acquire('job@1', 5000);
    const second = await lock.acquire('job@2', 5000);
    expect(first!.token).toBeGreaterThan(0);
    expect(second!.token).toBe(first!.token + 1);
    expect(await redis.get('a:fencing')).toBe(String(second!.token));
    expect(await lock.acquire('job@1', 5000)).toBeNull();
    const ttl = await redis.pttl('a:job@1');
    expect(ttl).toBeGreaterThan(4000);
    expect(ttl).toBeLessThanOrEqual(5000);
  });

  it('releases and extends only while the owner token matches (Lua compare-and-set)', async () => {
    const lock = new RedisJobLock(redis, { prefix: 'b:' });
    const stale = (await lock.acquire('k', 50))!;
    await new Promise((resolve) => setTimeout(resolve, 80));
    const owner = (await lock.acquire('k', 5000))!;
    await stale.release();
    expect(await stale.extend!(5000)).toBe(false);
    expect(await redis.get('b:k')).toBe(String(owner.token));
    expect(await owner.extend!(20_000)).toBe(true);
    expect(await redis.pttl('b:k')).toBeGreaterThan(15_000);
    await owner.release();
    expect(await redis.exists('b:k')).toBe(0);
  });

  it('rejects within its timeout when Redis does not answer', async () => {
    const hung = { eval: () => new Promise<unknown>(() => {}) };
    const lock = new RedisJobLock(hung, { timeout: 100 });
    const started = Date.now();
    await expect(lock.acquire('k', 1000)).rejects.toBeInstanceOf(LockTimeoutError);
    expect(Date.now() - started).toBeLessThan(1000);
  });
});
