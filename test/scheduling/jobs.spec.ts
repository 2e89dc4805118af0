import { Injectable } from '@nestjs/common';
import {
  Cron,
  Interval,
  type JobContext,
  JobRegistry,
  JobRunningError,
  TaskTimeoutError,
  Timeout,
  UnknownJobError,
} from 'nestjs-concurrency';
import { bootJobs, closeFaked, RecordingLogger } from './utils/boot.js';

const T0 = new Date('2030-01-01T00:00:00.000Z').getTime();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('scheduled jobs (fake timers)', () => {
  beforeEach(() => vi.useFakeTimers({ now: T0 }));
  afterEach(() => vi.useRealTimers());

  it('skips a tick while the previous run is still going, and counts it', async () => {
    @Injectable()
    class Slow {
      active = 0;
      maxActive = 0;
      @Interval(100, { name: 'slow' })
      async run() {
        this.maxActive = Math.max(this.maxActive, ++this.active);
        await sleep(350);
        this.active--;
      }
    }
    const app = await bootJobs([Slow]);
    await vi.advanceTimersByTimeAsync(1000);
    const info = app.get(JobRegistry).get('slow');
    expect(app.get(Slow).maxActive).toBe(1);
    // Runs start at 100, 500, 900; the ticks in between are skipped.
    expect(info.runs).toBe(3);
    expect(info.skipped).toBe(7);
    await closeFaked(app);
  });

  it("runs overlapping ticks with overlap: 'allow'", async () => {
    @Injectable()
    class Slow {
      active = 0;
      maxActive = 0;
      @Interval(100, { name: 'slow', overlap: 'allow' })
      async run() {
        this.maxActive = Math.max(this.maxActive, ++this.active);
        await sleep(350);
        this.active--;
      }
    }
    const app = await bootJobs([Slow]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(app.get(Slow).maxActive).toBe(4);
    expect(app.get(JobRegistry).get('slow')).toMatchObject({ runs: 10, skipped: 0 });
    await closeFaked(app);
  });

  it("takes the module's jobs.overlap as the default", async () => {
    @Injectable()
    class Slow {
      maxActive = 0;
      active = 0;
      @Interval(100)
      async run() {
        this.maxActive = Math.max(this.maxActive, ++this.active);
        await sleep(250);
        this.active--;
      }
    }
    const app = await bootJobs([Slow], { jobs: { overlap: 'allow' } });
    await vi.advanceTimersByTimeAsync(600);
    expect(app.get(Slow).maxActive).toBe(3);
    await closeFaked(app);
  });

  it('fixed-rate ticks at start + n x ms whatever each run takes', async () => {
    @Injectable()
    class Job {
      starts: number[] = [];
      @Interval(1000)
      async run() {
        this.starts.push(Date.now() - T0);
        await sleep(300);
      }
    }
    const app = await bootJobs([Job]);
    await vi.advanceTimersByTimeAsync(4000);
    expect(app.get(Job).starts).toEqual([1000, 2000, 3000, 4000]);
    await closeFaked(app);
  });

  it('fixed-delay waits the full interval after each run ends', async () => {
    @Injectable()
    class Job {
      starts: number[] = [];
      @Interval(1000, { mode: 'fixed-delay' })
      async run() {
        this.starts.push(Date.now() - T0);
        await sleep(300);
      }
    }
    const app = await bootJobs([Job]);
    await vi.advanceTimersByTimeAsync(5000);
    expect(app.get(Job).starts).toEqual([1000, 2300, 3600, 4900]);
    await closeFaked(app);
  });

  it('starts an interval after initialDelay, then every interval', async () => {
    @Injectable()
    class Job {
      starts: number[] = [];
      @Interval(1000, { initialDelay: 50 })
      run() {
        this.starts.push(Date.now() - T0);
      }
    }
    const app = await bootJobs([Job]);
    vi.advanceTimersByTime(2100);
    expect(app.get(Job).starts).toEqual([50, 1050, 2050]);
    await closeFaked(app);
  });

  it('counts a throwing job, logs it with its name, stores lastError and keeps the schedule', async () => {
    @Injectable()
    class Failing {
      calls = 0;
      @Interval(100, { name: 'sync-throw' })
      boom() {
        this.calls++;
        throw new Error('sync boom');
      }
      @Interval(100, { name: 'async-reject' })
      async reject() {
        await Promise.resolve();
        throw new Error('async boom');
      }
    }
    const logger = new RecordingLogger();
    const app = await bootJobs([Failing], {}, logger);
    await vi.advanceTimersByTimeAsync(500);
    const registry = app.get(JobRegistry);
    expect(app.get(Failing).calls).toBe(5);
    expect(registry.get('sync-throw')).toMatchObject({ runs: 5, failures: 5, running: 0 });
    expect(registry.get('async-reject')).toMatchObject({ runs: 5, failures: 5, running: 0 });
    expect((registry.get('sync-throw').lastError as Error).message).toBe('sync boom');
    expect(logger.errors.filter((m) => m.includes('"sync-throw"') && m.includes('sync boom'))).toHaveLength(5);
    expect(logger.errors.filter((m) => m.includes('"async-reject"') && m.includes('async boom'))).toHaveLength(5);
    await closeFaked(app);
  });

  it('aborts the run signal on timeout and counts the run as failed', async () => {
    @Injectable()
    class Hanging {
      signals: AbortSignal[] = [];
      @Timeout(100, { name: 'hanging', timeout: 500 })
      run(ctx: JobContext) {
        this.signals.push(ctx.signal);
        return new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)));
      }
    }
    const app = await bootJobs([Hanging]);
    await vi.advanceTimersByTimeAsync(599);
    const [signal] = app.get(Hanging).signals;
    expect(signal.aborted).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBeInstanceOf(TaskTimeoutError);
    const info = app.get(JobRegistry).get('hanging');
    expect(info).toMatchObject({ failures: 1, running: 0, lastDurationMs: 500 });
    expect(info.lastError).toBeInstanceOf(TaskTimeoutError);
    await closeFaked(app);
  });

  it('keeps counting a run past its timeout as running until the method ends: no second run meanwhile', async () => {
    @Injectable()
    class Stubborn {
      starts = 0;
      signals: AbortSignal[] = [];
      finish?: () => void;
      @Interval(100, { name: 'stubborn', timeout: 150 })
      run(ctx: JobContext) {
        this.starts++;
        this.signals.push(ctx.signal);
        // Ignores its signal.
        return new Promise<void>((resolve) => (this.finish = resolve));
      }
    }
    const app = await bootJobs([Stubborn]);
    const job = app.get(Stubborn);
    const registry = app.get(JobRegistry);
    await vi.advanceTimersByTimeAsync(250);
    // Failed at its timeout, signal aborted, but the method goes on: still running.
    expect(job.signals[0].reason).toBeInstanceOf(TaskTimeoutError);
    expect(registry.get('stubborn')).toMatchObject({ runs: 1, failures: 1, running: 1 });
    await expect(registry.trigger('stubborn')).rejects.toBeInstanceOf(JobRunningError);
    await vi.advanceTimersByTimeAsync(350);
    expect(job.starts).toBe(1);
    // Ticks of 200 ... 600 skipped, plus the trigger.
    expect(registry.get('stubborn')).toMatchObject({ runs: 1, running: 1, skipped: 6 });
    job.finish!();
    await vi.advanceTimersByTimeAsync(0);
    expect(registry.get('stubborn')).toMatchObject({ running: 0, failures: 1, lastDurationMs: 500 });
    await vi.advanceTimersByTimeAsync(100);
    expect(job.starts).toBe(2);
    job.finish!();
    await closeFaked(app);
  });

  it('trigger rejects with TaskTimeoutError at the timeout, while the method may go on', async () => {
    @Injectable()
    class Stubborn {
      @Interval(60_000, { name: 'stubborn', timeout: 100 })
      run() {
        return new Promise<void>(() => {});
      }
    }
    const app = await bootJobs([Stubborn], { shutdownTimeout: 100 });
    const result = app.get(JobRegistry).trigger('stubborn');
    const caught = result.catch((error: unknown) => error);
    await vi.advanceTimersByTimeAsync(100);
    expect(await caught).toBeInstanceOf(TaskTimeoutError);
    expect(app.get(JobRegistry).get('stubborn')).toMatchObject({ failures: 1, running: 1 });
    await closeFaked(app);
  });

  it('app.close() waits for a run past its timeout, then abandons it with a log after the shutdown timeout', async () => {
    @Injectable()
    class Stubborn {
      finish?: () => void;
      ended = false;
      @Timeout(100, { name: 'stubborn', timeout: 50 })
      async run() {
        await new Promise<void>((resolve) => (this.finish = resolve));
        this.ended = true;
      }
    }
    const app = await bootJobs([Stubborn], { shutdownTimeout: 1000 });
    const job = app.get(Stubborn);
    await vi.advanceTimersByTimeAsync(200);
    expect(app.get(JobRegistry).get('stubborn')).toMatchObject({ failures: 1, running: 1 });
    let closed = false;
    const closing = app.close().then(() => (closed = true));
    await vi.advanceTimersByTimeAsync(500);
    expect(closed).toBe(false);
    job.finish!();
    await vi.advanceTimersByTimeAsync(0);
    await closing;
    expect(job.ended).toBe(true);

    const logger = new RecordingLogger();
    const other = await bootJobs([Stubborn], { shutdownTimeout: 1000 }, logger);
    await vi.advanceTimersByTimeAsync(200);
    const started = Date.now();
    await closeFaked(other);
    // Waited (1000), aborted, waited again (1000), then gave up on it, naming it.
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    expect(other.get(Stubborn).ended).toBe(false);
    expect(logger.errors.some((m) => m.includes('abandoned') && m.includes('stubborn'))).toBe(true);
  });

  it("takes the module's jobs.timeout as the default", async () => {
    @Injectable()
    class Hanging {
      @Timeout(10)
      run(ctx: JobContext) {
        return new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
      }
    }
    const app = await bootJobs([Hanging], { jobs: { timeout: 200 } });
    await vi.advanceTimersByTimeAsync(210);
    expect(app.get(JobRegistry).get('Hanging.run').lastError).toBeInstanceOf(TaskTimeoutError);
    await closeFaked(app);
  });

  it('hands the method a JobContext with its name, nominal tick and signal', async () => {
    @Injectable()
    class Job {
      contexts: JobContext[] = [];
      @Interval(1000, { name: 'ctx' })
      run(ctx: JobContext) {
        this.contexts.push(ctx);
      }
    }
    const app = await bootJobs([Job]);
    vi.advanceTimersByTime(2000);
    const [first, second] = app.get(Job).contexts;
    expect(first).toMatchObject({ name: 'ctx', attempt: 1, scheduledAt: new Date(T0 + 1000) });
    expect(first.signal).toBeInstanceOf(AbortSignal);
    expect(first.fencingToken).toBeUndefined();
    expect(second.scheduledAt).toEqual(new Date(T0 + 2000));
    await closeFaked(app);
  });

  it('runs a seconds cron (6 fields) on every matching second, with the nominal tick as scheduledAt', async () => {
    @Injectable()
    class Job {
      ticks: number[] = [];
      @Cron('*/2 * * * * *', { name: 'every-2s' })
      run(ctx: JobContext) {
        this.ticks.push(ctx.scheduledAt.getTime() - T0);
      }
    }
    vi.setSystemTime(T0 + 300);
    const app = await bootJobs([Job]);
    expect(app.get(JobRegistry).get('every-2s').nextRunAt).toEqual(new Date(T0 + 2000));
    vi.advanceTimersByTime(9700);
    expect(app.get(Job).ticks).toEqual([2000, 4000, 6000, 8000, 10_000]);
    expect(app.get(JobRegistry).get('every-2s')).toMatchObject({ kind: 'cron', schedule: '*/2 * * * * *', runs: 5 });
    await closeFaked(app);
  });

  it('honours a cron time zone', async () => {
    @Injectable()
    class Job {
      @Cron('0 0 9 * * *', { name: 'nine-in-new-york', timeZone: 'America/New_York' })
      run() {}
    }
    const app = await bootJobs([Job]);
    // January: New York is UTC-5.
    expect(app.get(JobRegistry).get('nine-in-new-york').nextRunAt).toEqual(new Date('2030-01-01T14:00:00.000Z'));
    await closeFaked(app);
  });

  it('honours a cron utcOffset', async () => {
    @Injectable()
    class Job {
      @Cron('0 0 9 * * *', { name: 'nine-at-plus-two', utcOffset: 120 })
      run() {}
    }
    const app = await bootJobs([Job]);
    expect(app.get(JobRegistry).get('nine-at-plus-two').nextRunAt).toEqual(new Date('2030-01-01T07:00:00.000Z'));
    await closeFaked(app);
  });

  it('does not start a disabled cron job until it is resumed', async () => {
    @Injectable()
    class Job {
      calls = 0;
      @Cron('* * * * * *', { name: 'off', disabled: true })
      run() {
        this.calls++;
      }
    }
    const app = await bootJobs([Job]);
    vi.advanceTimersByTime(3000);
    expect(app.get(Job).calls).toBe(0);
    expect(app.get(JobRegistry).get('off').paused).toBe(true);
    app.get(JobRegistry).resume('off');
    vi.advanceTimersByTime(3000);
    expect(app.get(Job).calls).toBe(3);
    await closeFaked(app);
  });

  it('runs a @Timeout job once', async () => {
    @Injectable()
    class Job {
      calls = 0;
      @Timeout(1000)
      run() {
        this.calls++;
      }
    }
    const app = await bootJobs([Job]);
    vi.advanceTimersByTime(10_000);
    expect(app.get(Job).calls).toBe(1);
    expect(app.get(JobRegistry).get('Job.run')).toMatchObject({ kind: 'timeout', runs: 1, nextRunAt: null });
    await closeFaked(app);
  });
});

describe('JobRegistry', () => {
  beforeEach(() => vi.useFakeTimers({ now: T0 }));
  afterEach(() => vi.useRealTimers());

  @Injectable()
  class Jobs {
    calls = 0;
    fail = false;
    @Interval(1000, { name: 'work' })
    async work() {
      this.calls++;
      await sleep(100);
      if (this.fail) throw new Error('work failed');
    }
  }

  it('lists every job with its statistics', async () => {
    const app = await bootJobs([Jobs]);
    expect(app.get(JobRegistry).list()).toEqual([
      {
        name: 'work',
        kind: 'interval',
        schedule: 1000,
        running: 0,
        runs: 0,
        failures: 0,
        skipped: 0,
        lockFailures: 0,
        lastRunAt: null,
        lastDurationMs: null,
        lastError: null,
        lastErrorAt: null,
        nextRunAt: new Date(T0 + 1000),
        paused: false,
        pausedReason: null,
        consecutiveFailures: 0,
      },
    ]);
    await vi.advanceTimersByTimeAsync(1100);
    expect(app.get(JobRegistry).get('work')).toMatchObject({
      runs: 1,
      lastRunAt: new Date(T0 + 1000),
      lastDurationMs: 100,
      nextRunAt: new Date(T0 + 2000),
    });
    await closeFaked(app);
  });

  it('trigger runs the job now and resolves when the run ends', async () => {
    const app = await bootJobs([Jobs]);
    const registry = app.get(JobRegistry);
    let done = false;
    const run = registry.trigger('work').then(() => (done = true));
    expect(app.get(Jobs).calls).toBe(1);
    expect(registry.get('work').running).toBe(1);
    await vi.advanceTimersByTimeAsync(99);
    expect(done).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    await run;
    expect(registry.get('work')).toMatchObject({ runs: 1, running: 0 });
    await closeFaked(app);
  });

  it("trigger rejects with the run's error", async () => {
    const app = await bootJobs([Jobs]);
    app.get(Jobs).fail = true;
    const run = app.get(JobRegistry).trigger('work');
    const outcome = expect(run).rejects.toThrow('work failed');
    await vi.advanceTimersByTimeAsync(100);
    await outcome;
    expect(app.get(JobRegistry).get('work').failures).toBe(1);
    await closeFaked(app);
  });

  it('trigger respects overlap: a run in progress makes it reject with JobRunningError', async () => {
    const app = await bootJobs([Jobs]);
    const registry = app.get(JobRegistry);
    const first = registry.trigger('work');
    await expect(registry.trigger('work')).rejects.toBeInstanceOf(JobRunningError);
    expect(registry.get('work')).toMatchObject({ runs: 1, skipped: 1 });
    await vi.advanceTimersByTimeAsync(100);
    await first;
    await closeFaked(app);
  });

  it('pause stops the ticks and resume starts them again', async () => {
    const app = await bootJobs([Jobs]);
    const registry = app.get(JobRegistry);
    registry.pause('work');
    expect(registry.get('work')).toMatchObject({ paused: true, nextRunAt: null });
    await vi.advanceTimersByTimeAsync(5000);
    expect(app.get(Jobs).calls).toBe(0);
    registry.resume('work');
    expect(registry.get('work')).toMatchObject({ paused: false, nextRunAt: new Date(T0 + 6000) });
    await vi.advanceTimersByTimeAsync(2000);
    expect(app.get(Jobs).calls).toBe(2);
    await closeFaked(app);
  });

  it('trigger works while paused', async () => {
    const app = await bootJobs([Jobs]);
    const registry = app.get(JobRegistry);
    registry.pause('work');
    const run = registry.trigger('work');
    await vi.advanceTimersByTimeAsync(100);
    await run;
    expect(app.get(Jobs).calls).toBe(1);
    await closeFaked(app);
  });

  it('throws for an unknown name, naming the job and listing the known ones', async () => {
    const app = await bootJobs([Jobs]);
    const registry = app.get(JobRegistry);
    for (const call of [
      () => registry.get('nope'),
      () => registry.trigger('nope'),
      () => registry.pause('nope'),
      () => registry.resume('nope'),
    ]) {
      expect(call).toThrow(UnknownJobError);
      expect(call).toThrow('No job named "nope". Known jobs: "work".');
    }
    await closeFaked(app);
  });
});
