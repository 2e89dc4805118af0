import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { Injectable } from '@nestjs/common';
import { InMemoryJobLock, Interval, type JobContext, JobRegistry, TaskAbortedError } from 'nestjs-concurrency';
import { bootError, bootJobs, closeFaked, RecordingLogger } from './utils/boot.js';

const T0 = new Date('2030-01-01T00:00:00.000Z').getTime();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('overlap policies (fake timers)', () => {
  beforeEach(() => vi.useFakeTimers({ now: T0 }));
  afterEach(() => vi.useRealTimers());

  it("'buffer-one' runs one kept tick after the run, never two at once, and counts the others as skipped", async () => {
    @Injectable()
    class Slow {
      active = 0;
      maxActive = 0;
      starts: number[] = [];
      scheduled: number[] = [];
      @Interval(100, { name: 'slow', overlap: 'buffer-one' })
      async run(ctx: JobContext) {
        this.maxActive = Math.max(this.maxActive, ++this.active);
        this.starts.push(Date.now() - T0);
        this.scheduled.push(ctx.scheduledAt.getTime() - T0);
        await sleep(350);
        this.active--;
      }
    }
    const app = await bootJobs([Slow]);
    await vi.advanceTimersByTimeAsync(1000);
    const slow = app.get(Slow);
    expect(slow.maxActive).toBe(1);
    // 100 runs to 450; tick 200 is kept, 300 and 400 skipped; the kept one runs at 450 (to 800); 500 kept, 600-700
    // skipped; 500 runs at 800.
    expect(slow.starts).toEqual([100, 450, 800]);
    expect(slow.scheduled).toEqual([100, 200, 500]);
    const info = app.get(JobRegistry).get('slow');
    expect(info.runs).toBe(3);
    // 10 ticks: 3 ran, 1 (tick 800) is kept now, 6 skipped.
    expect(info.skipped).toBe(6);
    await closeFaked(app);
  });

  it("'cancel-previous' aborts the running run's signal with TaskAbortedError, waits for it, then runs", async () => {
    @Injectable()
    class Slow {
      active = 0;
      maxActive = 0;
      reasons: unknown[] = [];
      starts: number[] = [];
      @Interval(100, { name: 'slow', overlap: 'cancel-previous' })
      async run({ signal }: JobContext) {
        this.maxActive = Math.max(this.maxActive, ++this.active);
        this.starts.push(Date.now() - T0);
        // Honours its signal, 30 ms late (cleanup).
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 1000);
          signal.addEventListener('abort', () => {
            this.reasons.push(signal.reason);
            clearTimeout(timer);
            setTimeout(resolve, 30);
          });
        });
        this.active--;
      }
    }
    const logger = new RecordingLogger();
    const app = await bootJobs([Slow], {}, logger);
    await vi.advanceTimersByTimeAsync(450);
    const slow = app.get(Slow);
    expect(slow.maxActive).toBe(1);
    expect(slow.starts).toEqual([100, 230, 330, 430]);
    expect(slow.reasons).toHaveLength(3);
    expect(slow.reasons.every((r) => r instanceof TaskAbortedError)).toBe(true);
    // A cancelled run is not a failure.
    const info = app.get(JobRegistry).get('slow');
    expect(info.failures).toBe(0);
    expect(logger.errors).toEqual([]);
    await closeFaked(app);
  });

  it("'cancel-previous' waits at most the job's timeout for a run that ignores its signal, then skips", async () => {
    @Injectable()
    class Stubborn {
      active = 0;
      maxActive = 0;
      @Interval(1000, { name: 'stubborn', overlap: 'cancel-previous', timeout: 300 })
      async run() {
        this.maxActive = Math.max(this.maxActive, ++this.active);
        await sleep(2500); // ignores its signal
        this.active--;
      }
    }
    const logger = new RecordingLogger();
    const app = await bootJobs([Stubborn], {}, logger);
    await vi.advanceTimersByTimeAsync(2500);
    expect(app.get(Stubborn).maxActive).toBe(1);
    // Tick 2000 waits until 2300 for the run of 1000 (still going), then is skipped.
    expect(app.get(JobRegistry).get('stubborn')).toMatchObject({ runs: 1, skipped: 1 });
    expect(logger.warnings.some((w) => w.includes('"stubborn"') && w.includes("'cancel-previous'"))).toBe(true);
    await closeFaked(app);
  });

  it("'cancel-previous' with a lock cancels the run through the store and never runs two at once", async () => {
    const lock = new InMemoryJobLock();
    const active = { now: 0, max: 0, reasons: [] as unknown[], starts: 0 };
    const boot = async () => {
      @Injectable()
      class Slow {
        @Interval(1000, { name: 'slow', overlap: 'cancel-previous', lock: true })
        async run({ signal }: JobContext) {
          active.max = Math.max(active.max, ++active.now);
          active.starts++;
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, 5000);
            signal.addEventListener('abort', () => {
              active.reasons.push(signal.reason);
              clearTimeout(timer);
              setTimeout(resolve, 50);
            });
          });
          active.now--;
        }
      }
      return bootJobs([Slow], { jobs: { lock } });
    };
    const [a, b] = [await boot(), await boot()];
    await vi.advanceTimersByTimeAsync(3500);
    expect(active.max).toBe(1);
    expect(active.starts).toBe(3);
    expect(active.reasons).toHaveLength(2);
    expect(active.reasons.every((r) => r instanceof TaskAbortedError)).toBe(true);
    await Promise.all([closeFaked(a), closeFaked(b)]);
  });

  it.each([
    ['without a lock', false],
    ['with a lock, across two instances', true],
  ])("'cancel-previous' cancels a trigger()ed run as it cancels a tick's (%s)", async (_, locked) => {
    const lock = new InMemoryJobLock();
    const seen = { reasons: [] as unknown[], starts: 0, active: 0, max: 0 };
    const boot = async () => {
      @Injectable()
      class Slow {
        @Interval(1000, { name: 'slow', overlap: 'cancel-previous', lock: locked, initialDelay: 1500 })
        async run({ signal }: JobContext) {
          seen.max = Math.max(seen.max, ++seen.active);
          seen.starts++;
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, 60_000);
            signal.addEventListener('abort', () => {
              seen.reasons.push(signal.reason);
              clearTimeout(timer);
              setTimeout(resolve, 50);
            });
          });
          seen.active--;
        }
      }
      return bootJobs([Slow], { jobs: { lock } });
    };
    const apps = locked ? [await boot(), await boot()] : [await boot()];
    // Before any tick: a triggered run, then the first ticks (at 1500 ms) come during it.
    let settled = false;
    const triggered = apps[0]
      .get(JobRegistry)
      .trigger('slow')
      .finally(() => (settled = true));
    await vi.advanceTimersByTimeAsync(1800);
    expect(seen.reasons).toHaveLength(1);
    expect(seen.reasons[0]).toBeInstanceOf(TaskAbortedError);
    // The method honoured its signal and returned: trigger() resolves with it; the tick then ran.
    expect(settled).toBe(true);
    await triggered;
    expect(seen.starts).toBe(2);
    expect(seen.max).toBe(1);
    await Promise.all(apps.map((app) => closeFaked(app)));
  });

  it("'buffer-one' with a lock keeps at most one tick across two instances", async () => {
    const lock = new InMemoryJobLock();
    const active = { now: 0, max: 0, starts: 0 };
    const boot = async () => {
      @Injectable()
      class Slow {
        @Interval(100, { name: 'slow', overlap: 'buffer-one', lock: true })
        async run() {
          active.max = Math.max(active.max, ++active.now);
          active.starts++;
          await sleep(350);
          active.now--;
        }
      }
      return bootJobs([Slow], { jobs: { lock } });
    };
    const [a, b] = [await boot(), await boot()];
    await vi.advanceTimersByTimeAsync(2000);
    expect(active.max).toBe(1);
    // A run of 350 ms plus at most a poll (100 ms) before the buffered one starts: 4 to 6 runs in 2 s, never 2 at once.
    expect(active.starts).toBeGreaterThanOrEqual(4);
    expect(active.starts).toBeLessThanOrEqual(6);
    await Promise.all([closeFaked(a), closeFaked(b)]);
  });

  it('fails boot naming the job and option for an invalid overlap or pauseAfterFailures', async () => {
    @Injectable()
    class Odd {
      @Interval(1000, { overlap: 'buffer-two' as 'skip' })
      run() {}
    }
    expect((await bootError([Odd])).message).toBe(
      `Invalid job option "overlap" on Odd.run(): expected 'skip', 'allow', 'buffer-one' or 'cancel-previous', got "buffer-two".`,
    );
    @Injectable()
    class Odd2 {
      @Interval(1000, { pauseAfterFailures: 0 })
      run() {}
    }
    expect((await bootError([Odd2])).message).toContain(`Invalid job option "pauseAfterFailures" on Odd2.run()`);
  });
});

describe('pauseAfterFailures (fake timers)', () => {
  beforeEach(() => vi.useFakeTimers({ now: T0 }));
  afterEach(() => vi.useRealTimers());

  it('pauses after exactly n consecutive failures, logs and publishes it; a success resets; resume() resets', async () => {
    @Injectable()
    class Flaky {
      outcomes: boolean[] = [false, false, true, false, false, false, false];
      calls = 0;
      @Interval(100, { name: 'flaky', pauseAfterFailures: 3 })
      run() {
        const ok = this.outcomes[this.calls++] ?? false;
        if (!ok) throw new Error('boom');
      }
    }
    const messages: Array<{ type: string; job: string; reason?: string }> = [];
    const listener = (m: unknown) => messages.push(m as (typeof messages)[number]);
    subscribe('nestjs-concurrency:job', listener);
    try {
      const logger = new RecordingLogger();
      const app = await bootJobs([Flaky], {}, logger);
      const registry = app.get(JobRegistry);
      await vi.advanceTimersByTimeAsync(500);
      // fail, fail, ok (reset), fail, fail: not paused yet.
      expect(registry.get('flaky')).toMatchObject({ paused: false, consecutiveFailures: 2, runs: 5 });
      await vi.advanceTimersByTimeAsync(100);
      expect(registry.get('flaky')).toMatchObject({ paused: true, pausedReason: 'failures', runs: 6 });
      expect(logger.errors.some((e) => e.includes('"flaky"') && e.includes('pauseAfterFailures: 3'))).toBe(true);
      expect(messages.filter((m) => m.type === 'paused')).toEqual([
        { type: 'paused', job: 'flaky', kind: 'interval', reason: 'failures' },
      ]);
      await vi.advanceTimersByTimeAsync(1000);
      expect(registry.get('flaky').runs).toBe(6);
      registry.resume('flaky');
      expect(registry.get('flaky')).toMatchObject({ paused: false, pausedReason: null, consecutiveFailures: 0 });
      // Three more failures are needed to pause again.
      await vi.advanceTimersByTimeAsync(200);
      expect(registry.get('flaky')).toMatchObject({ paused: false, consecutiveFailures: 2 });
      await vi.advanceTimersByTimeAsync(100);
      expect(registry.get('flaky')).toMatchObject({ paused: true, pausedReason: 'failures', runs: 9 });
      registry.pause('flaky');
      await closeFaked(app);
    } finally {
      unsubscribe('nestjs-concurrency:job', listener);
    }
  });

  it('reports a pause by pause() as manual', async () => {
    @Injectable()
    class Quiet {
      @Interval(100, { name: 'quiet' })
      run() {}
    }
    const app = await bootJobs([Quiet]);
    app.get(JobRegistry).pause('quiet');
    expect(app.get(JobRegistry).get('quiet')).toMatchObject({ paused: true, pausedReason: 'manual' });
    await closeFaked(app);
  });
});
