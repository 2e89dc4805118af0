import type { INestApplication } from '@nestjs/common';
import { Injectable } from '@nestjs/common';
import { InMemoryJobLock, Interval, type JobLock, JobRegistry } from 'nestjs-concurrency';
import { RecordingLogger, bootJobs, closeFaked } from './utils/boot.js';

/** Two app instances in one process sharing an InMemoryJobLock, on fake timers: the bound is exact. */
describe('cluster-wide pause with a shared in-memory lock (fake timers)', () => {
  beforeEach(() => vi.useFakeTimers({ now: new Date('2026-01-01T00:00:00Z') }));
  afterEach(() => vi.useRealTimers());

  const runs: string[] = [];
  async function boot(instance: string, lock: JobLock, logger: RecordingLogger | false = false) {
    @Injectable()
    class Poll {
      @Interval(100, { name: 'poll' })
      run() {
        runs.push(instance);
      }
    }
    return bootJobs([Poll], { jobs: { lock, instance } }, logger);
  }

  it('stops the other instance within one poll (250 ms) and starts it again on resume', async () => {
    runs.length = 0;
    const lock = new InMemoryJobLock();
    const a = await boot('a', lock);
    const b = await boot('b', lock);
    await vi.advanceTimersByTimeAsync(1000);
    a.get(JobRegistry).pause('poll');
    runs.length = 0;
    await vi.advanceTimersByTimeAsync(260);
    const afterPoll = runs.length;
    expect(runs.every((r) => r === 'b')).toBe(true);
    expect(afterPoll).toBeLessThanOrEqual(3);
    await vi.advanceTimersByTimeAsync(2000);
    expect(runs.length).toBe(afterPoll);
    b.get(JobRegistry).resume('poll');
    await vi.advanceTimersByTimeAsync(600);
    expect(runs.filter((r) => r === 'a').length).toBeGreaterThan(0);
    await Promise.all([closeFaked(a), closeFaked(b)] as Promise<void>[]);
  });

  it('never turns a custom store that answers garbage into an unhandled rejection; it logs once', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    const logger = new RecordingLogger();
    const inner = new InMemoryJobLock();
    const hostile: JobLock = {
      acquire: (key, ttl) => inner.acquire(key, ttl),
      setControl: () => {
        throw new Error('sync throw');
      },
      control: async () => ({ version: 1, jobs: 'nope' }) as never,
      addRun: () => Promise.reject(new Error('no history')),
      runs: async () => [],
    };
    let app: INestApplication | undefined;
    try {
      app = await boot('h', hostile, logger);
      app.get(JobRegistry).pause('poll');
      app.get(JobRegistry).resume('poll');
      await vi.advanceTimersByTimeAsync(2000);
      expect(unhandled).toEqual([]);
      expect(logger.warnings.filter((w) => w.includes('shared state')).length).toBe(1);
      expect(logger.warnings.filter((w) => w.includes('pause state')).length).toBe(1);
      expect(logger.warnings.filter((w) => w.includes('history')).length).toBe(1);
      expect(app.get(JobRegistry).get('poll').runs).toBeGreaterThan(10);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      if (app) await closeFaked(app);
    }
  });
});

describe('the pause state a lock store keeps (InMemoryJobLock)', () => {
  it('refuses a late write of an older pause()/resume() once a later call is stored, and keeps a current one', async () => {
    const lock = new InMemoryJobLock();
    await lock.setControl('poll', { paused: false, pausedAt: 2000 });
    // A pause called at 1000, written late (its first try failed): the resume called at 2000 wins.
    expect(await lock.setControl('poll', { paused: true, pausedAt: 1000, late: true })).toBe(false);
    expect((await lock.control(null))!.jobs.get('poll')).toEqual({ paused: false });
    // A first try the store only runs after its caller gave up on it (`lateAfter` is past) is late too.
    expect(await lock.setControl('poll', { paused: true, pausedAt: 1500, lateAfter: Date.now() - 1 })).toBe(false);
    expect(await lock.setControl('poll', { paused: true, pausedAt: 1500, lateAfter: Date.now() + 60_000 })).toBe(true);
    await lock.setControl('poll', { paused: false, pausedAt: 2500 });
    // A late write of a call made after the stored one is stored.
    expect(await lock.setControl('poll', { paused: true, pausedAt: 3000, late: true })).toBe(true);
    expect((await lock.control(null))!.jobs.get('poll')).toEqual({ paused: true });
  });
});
