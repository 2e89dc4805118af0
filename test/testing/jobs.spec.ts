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
import { bootKit, deferred } from './helpers.js';

const T0 = new Date('2030-01-01T00:00:00.000Z').getTime();
const iso = (ms: number) => new Date(T0 + ms).toISOString();

/** Records every run: which job, the tick it was named by, and its start and end in order. */
@Injectable()
class Log {
  readonly events: string[] = [];
  readonly ticks: Array<[string, string]> = [];
}

describe('ConcurrencyTester.runJob()', () => {
  it('runs one tick with a real JobContext and resolves with its outcome', async () => {
    @Injectable()
    class Billing {
      contexts: JobContext[] = [];
      @Cron('0 3 * * *', { name: 'invoices' })
      async run(ctx: JobContext): Promise<string> {
        this.contexts.push(ctx);
        await Promise.resolve();
        return 'sent';
      }
    }
    vi.useFakeTimers({ toFake: ['Date'], now: T0 });
    const { app, tester } = await bootKit([Billing]);
    vi.useRealTimers();
    expect(await tester.runJob('invoices')).toEqual({ status: 'fulfilled', value: undefined });
    const [ctx] = app.get(Billing).contexts;
    expect(ctx).toMatchObject({ name: 'invoices', attempt: 1 });
    expect(ctx.signal).toBeInstanceOf(AbortSignal);
    expect(ctx.scheduledAt.toISOString()).toBe(iso(0)); // the jobs' clock: boot time, until advance() moves it
    expect(app.get(JobRegistry).get('invoices')).toMatchObject({ runs: 1, failures: 0 });
    await app.close();
  });

  it('resolves with the failure of a run that throws, and counts it as the job does', async () => {
    @Injectable()
    class Failing {
      @Interval(1000, { name: 'sync' })
      run(): void {
        throw new Error('upstream down');
      }
    }
    const { app, tester } = await bootKit([Failing]);
    const outcome = await tester.runJob('sync');
    expect(outcome).toEqual({ status: 'rejected', reason: new Error('upstream down') });
    expect(app.get(JobRegistry).get('sync')).toMatchObject({ runs: 1, failures: 1 });
    await app.close();
  });

  it('resolves with TaskTimeoutError for a run past its timeout, whose signal is aborted', async () => {
    @Injectable()
    class Slow {
      reason: unknown;
      @Interval(1000, { name: 'slow', timeout: 20 })
      run(ctx: JobContext): Promise<void> {
        return new Promise((resolve) =>
          ctx.signal.addEventListener('abort', () => {
            this.reason = ctx.signal.reason;
            resolve();
          }),
        );
      }
    }
    const { app, tester } = await bootKit([Slow]);
    const outcome = await tester.runJob('slow');
    expect(outcome.status).toBe('rejected');
    expect((outcome as { reason: unknown }).reason).toBeInstanceOf(TaskTimeoutError);
    expect(app.get(Slow).reason).toBeInstanceOf(TaskTimeoutError);
    await app.close();
  });

  it("answers JobRunningError while a run is going and overlap is 'skip'", async () => {
    const gate = deferred();
    @Injectable()
    class Long {
      @Interval(1000, { name: 'long' })
      run(): Promise<void> {
        return gate.promise;
      }
    }
    const { app, tester } = await bootKit([Long]);
    const first = tester.runJob('long');
    const second = await tester.runJob('long');
    expect(second.status).toBe('rejected');
    expect((second as { reason: unknown }).reason).toBeInstanceOf(JobRunningError);
    gate.resolve();
    expect(await first).toEqual({ status: 'fulfilled', value: undefined });
    await app.close();
  });

  it('throws UnknownJobError listing the jobs for a name no job has', async () => {
    @Injectable()
    class One {
      @Timeout(10, { name: 'warm-up' })
      run(): void {}
    }
    const { app, tester } = await bootKit([One]);
    await expect(tester.runJob('warmup')).rejects.toThrow(UnknownJobError);
    await expect(tester.runJob('warmup')).rejects.toThrow(/warm-up/);
    await app.close();
  });
});

describe('ConcurrencyTester.advance()', () => {
  afterEach(() => vi.useRealTimers());

  async function boot(...providers: Parameters<typeof bootKit>[0]) {
    // Date is fixed at boot only, so the schedules start at a known time; the test then runs on real timers.
    vi.useFakeTimers({ toFake: ['Date'], now: T0 });
    const booted = await bootKit([Log, ...providers]);
    vi.useRealTimers();
    return { ...booted, log: booted.app.get(Log) };
  }

  it('runs every tick of an interval, a timeout and a cron in time order, each named by its tick', async () => {
    @Injectable()
    class Jobs {
      constructor(private readonly log: Log) {}
      @Interval(1500, { name: 'poll' })
      poll(ctx: JobContext): void {
        this.log.ticks.push(['poll', ctx.scheduledAt.toISOString()]);
      }
      @Timeout(2000, { name: 'warm-up' })
      warmUp(ctx: JobContext): void {
        this.log.ticks.push(['warm-up', ctx.scheduledAt.toISOString()]);
      }
      @Cron('*/2 * * * * *', { name: 'every-2s', timeZone: 'Europe/Berlin' })
      cron(ctx: JobContext): void {
        this.log.ticks.push(['every-2s', ctx.scheduledAt.toISOString()]);
      }
    }
    const { app, tester, log } = await boot(Jobs);
    await tester.advance(3000);
    expect(log.ticks).toEqual([
      ['poll', iso(1500)],
      ['warm-up', iso(2000)], // the same instant as every-2s: the job declared first goes first
      ['every-2s', iso(2000)],
      ['poll', iso(3000)],
    ]);
    await tester.advance(1000);
    expect(log.ticks.slice(4)).toEqual([['every-2s', iso(4000)]]);
    expect(app.get(JobRegistry).get('warm-up').runs).toBe(1); // a timeout fires once
    await app.close();
  });

  it('fires a cron in its time zone (across a DST change) or at its UTC offset', async () => {
    @Injectable()
    class Zoned {
      constructor(private readonly log: Log) {}
      @Cron('0 30 2 * * *', { name: 'new-york', timeZone: 'America/New_York' })
      newYork(ctx: JobContext): void {
        this.log.ticks.push(['new-york', ctx.scheduledAt.toISOString()]);
      }
      @Cron('0 0 9 * * *', { name: 'plus-two', utcOffset: 120 })
      plusTwo(ctx: JobContext): void {
        this.log.ticks.push(['plus-two', ctx.scheduledAt.toISOString()]);
      }
    }
    // 2030-03-09 12:00Z: New York springs forward on 2030-03-10 at 02:00 local (no 02:30 that day).
    vi.useFakeTimers({ toFake: ['Date'], now: new Date('2030-03-09T12:00:00.000Z') });
    const { app, tester } = await bootKit([Log, Zoned]);
    vi.useRealTimers();
    await tester.advance(3 * 24 * 60 * 60 * 1000);
    const ticks = app.get(Log).ticks;
    expect(ticks.filter(([name]) => name === 'plus-two').map(([, at]) => at)).toEqual([
      '2030-03-10T07:00:00.000Z',
      '2030-03-11T07:00:00.000Z',
      '2030-03-12T07:00:00.000Z',
    ]);
    expect(ticks.filter(([name]) => name === 'new-york').map(([, at]) => at)).toEqual([
      '2030-03-10T07:00:00.000Z', // 02:30 does not exist that day: cron fires at 03:00 EDT, as its CronJob does
      '2030-03-11T06:30:00.000Z', // 02:30 EDT
      '2030-03-12T06:30:00.000Z',
    ]);
    await app.close();
  });

  it('settles each run before the next tick starts, even when runs take real time', async () => {
    @Injectable()
    class Slow {
      constructor(private readonly log: Log) {}
      @Interval(100, { name: 'slow' })
      async run(ctx: JobContext): Promise<void> {
        this.log.events.push(`start ${ctx.scheduledAt.getTime() - T0}`);
        await new Promise((resolve) => setImmediate(resolve));
        await new Promise((resolve) => setImmediate(resolve));
        this.log.events.push(`end ${ctx.scheduledAt.getTime() - T0}`);
      }
    }
    const { app, tester, log } = await boot(Slow);
    await tester.advance(300);
    expect(log.events).toEqual(['start 100', 'end 100', 'start 200', 'end 200', 'start 300', 'end 300']);
    await app.close();
  });

  it("works under the test runner's fake timers, without advancing them", async () => {
    @Injectable()
    class Counter {
      runs = 0;
      @Interval(60_000, { name: 'hourly-ish' })
      async run(): Promise<void> {
        await Promise.resolve();
        this.runs++;
      }
    }
    vi.useFakeTimers({ now: T0 });
    const { app, tester } = await bootKit([Counter]);
    await tester.advance(5 * 60_000);
    expect(app.get(Counter).runs).toBe(5);
    expect(Date.now()).toBe(T0); // the runner's clock was not touched
    vi.useRealTimers();
    await app.close();
  });

  it("ticks a 'fixed-delay' interval ms after each run, from its initialDelay", async () => {
    @Injectable()
    class Delayed {
      constructor(private readonly log: Log) {}
      @Interval(1000, { name: 'delayed', mode: 'fixed-delay', initialDelay: 0 })
      run(ctx: JobContext): void {
        this.log.ticks.push(['delayed', ctx.scheduledAt.toISOString()]);
      }
    }
    const { app, tester, log } = await boot(Delayed);
    await tester.advance(2500);
    expect(log.ticks.map(([, at]) => at)).toEqual([iso(0), iso(1000), iso(2000)]);
    await app.close();
  });

  it('skips the ticks of a paused job and runs them again once resumed', async () => {
    @Injectable()
    class Paused {
      runs = 0;
      @Interval(100, { name: 'paused' })
      run(): void {
        this.runs++;
      }
    }
    const { app, tester } = await boot(Paused);
    const registry = app.get(JobRegistry);
    registry.pause('paused');
    await tester.advance(500);
    expect(app.get(Paused).runs).toBe(0);
    registry.resume('paused');
    await tester.advance(200);
    expect(app.get(Paused).runs).toBe(2);
    await app.close();
  });

  it('fires a @Timeout that came due while paused once it is resumed, as its timer does', async () => {
    @Injectable()
    class Once {
      runs = 0;
      @Timeout(100, { name: 'once' })
      run(): void {
        this.runs++;
      }
    }
    const { app, tester } = await boot(Once);
    app.get(JobRegistry).pause('once');
    await tester.advance(500);
    expect(app.get(Once).runs).toBe(0);
    app.get(JobRegistry).resume('once');
    await tester.advance(0);
    expect(app.get(Once).runs).toBe(1);
    await tester.advance(500);
    expect(app.get(Once).runs).toBe(1);
    await app.close();
  });

  it('leaves a disabled cron alone until it is resumed', async () => {
    @Injectable()
    class Disabled {
      runs = 0;
      @Cron('* * * * * *', { name: 'disabled', disabled: true })
      run(): void {
        this.runs++;
      }
    }
    const { app, tester } = await boot(Disabled);
    await tester.advance(3000);
    expect(app.get(Disabled).runs).toBe(0);
    app.get(JobRegistry).resume('disabled');
    await tester.advance(3000);
    expect(app.get(Disabled).runs).toBe(3);
    await app.close();
  });

  it('takes the lock of a lock: true job on each tick, so the run gets a fencing token', async () => {
    @Injectable()
    class Locked {
      tokens: Array<number | undefined> = [];
      @Cron('0 * * * * *', { name: 'locked', lock: true })
      run(ctx: JobContext): void {
        this.tokens.push(ctx.fencingToken);
      }
    }
    const { app, tester } = await boot(Locked);
    await tester.advance(3 * 60_000);
    const { tokens } = app.get(Locked);
    expect(tokens).toHaveLength(3);
    expect(tokens.every((token) => typeof token === 'number')).toBe(true);
    expect(new Set(tokens).size).toBe(3);
    await app.close();
  });

  it('refuses a negative or non-number ms, and a second advance() while one runs, naming the problem', async () => {
    const gate = deferred();
    @Injectable()
    class Held {
      @Interval(10, { name: 'held' })
      run(): Promise<void> {
        return gate.promise;
      }
    }
    const { app, tester } = await boot(Held);
    await expect(tester.advance(-1)).rejects.toThrow(
      /advance\(\): invalid ms: expected a finite number of ms >= 0, got -1/,
    );
    await expect(tester.advance('1s' as never)).rejects.toThrow(TypeError);
    const first = tester.advance(10);
    await expect(tester.advance(10)).rejects.toThrow(/already running/);
    gate.resolve();
    await first;
    await app.close();
  });
});
