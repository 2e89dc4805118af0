import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  ConcurrencyModule,
  ConcurrencyOptionsError,
  Cron,
  Interval,
  InvalidJobError,
  JobRegistry,
  Timeout,
} from 'nestjs-concurrency';
import { bootError, bootJobs, closeFaked } from './utils/boot.js';

@Injectable()
class Jobs {
  cron = 0;
  every = 0;
  @Cron('0 0 * * *', { name: 'nightly' })
  nightly() {
    this.cron++;
  }
  @Interval(10_000, { name: 'every' })
  tick() {
    this.every++;
  }
  @Timeout(1000, { name: 'once' })
  once() {}
}

describe('jobs.overrides: schedules from configuration', () => {
  beforeEach(() => vi.useFakeTimers({ now: new Date('2026-01-01T00:00:00Z') }));
  afterEach(() => vi.useRealTimers());

  it('replaces a cron expression and an interval at boot', async () => {
    const app = await bootJobs([Jobs], {
      jobs: { overrides: { nightly: { cron: '*/2 * * * * *' }, every: { interval: 500 } } },
    });
    await vi.advanceTimersByTimeAsync(4100);
    expect(app.get(Jobs).cron).toBe(2);
    expect(app.get(Jobs).every).toBe(8);
    expect(app.get(JobRegistry).get('nightly').schedule).toBe('*/2 * * * * *');
    expect(app.get(JobRegistry).get('every').schedule).toBe(500);
    await closeFaked(app);
  });

  it('takes a time zone, and disabled mounts the job paused (resume starts it)', async () => {
    const app = await bootJobs([Jobs], {
      jobs: { overrides: { nightly: { timeZone: 'Asia/Tokyo' }, every: { disabled: true } } },
    });
    const registry = app.get(JobRegistry);
    // Midnight in Tokyo is 15:00 UTC.
    expect(registry.get('nightly').nextRunAt?.toISOString()).toBe('2026-01-01T15:00:00.000Z');
    expect(registry.get('every').paused).toBe(true);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(app.get(Jobs).every).toBe(0);
    registry.resume('every');
    await vi.advanceTimersByTimeAsync(10_000);
    expect(app.get(Jobs).every).toBe(1);
    await closeFaked(app);
  });

  it('comes from forRootAsync (e.g. a ConfigService)', async () => {
    @Module({
      imports: [
        ConcurrencyModule.forRootAsync({
          useFactory: async () => ({ jobs: { overrides: { every: { interval: 1000 } } } }),
        }),
      ],
      providers: [Jobs],
    })
    class AppModule {}
    const app = await NestFactory.create(AppModule, { abortOnError: false, logger: false });
    await app.init();
    await vi.advanceTimersByTimeAsync(3100);
    expect(app.get(Jobs).every).toBe(3);
    await closeFaked(app);
  });

  it('fails boot on an unknown job name, naming it and the known jobs', async () => {
    const error = await bootError([Jobs], { jobs: { overrides: { nighly: { cron: '* * * * *' } } } });
    expect(error).toBeInstanceOf(ConcurrencyOptionsError);
    expect(error.message).toContain('"nighly"');
    expect(error.message).toContain('jobs.overrides');
    expect(error.message).toContain('"nightly"');
  });

  it('fails boot on an invalid cron or time zone, naming job and option', async () => {
    let error = await bootError([Jobs], { jobs: { overrides: { nightly: { cron: '61 * * * *' } } } });
    expect(error.message).toContain('jobs.overrides["nightly"].cron');
    expect(error.message).toContain('"61 * * * *"');
    error = await bootError([Jobs], { jobs: { overrides: { nightly: { timeZone: 'Mars/Olympus' } } } });
    expect(error.message).toContain('jobs.overrides["nightly"].timeZone');
  });

  it('fails boot on a value of the wrong kind or shape, naming job and option', async () => {
    const cases: Array<[unknown, string]> = [
      [{ every: { cron: '* * * * *' } }, 'jobs.overrides["every"].cron'],
      [{ nightly: { interval: 1000 } }, 'jobs.overrides["nightly"].interval'],
      [{ once: { interval: 1000 } }, 'jobs.overrides["once"].interval'],
      [{ every: { interval: -5 } }, 'jobs.overrides["every"].interval'],
      [{ every: { interval: Infinity } }, 'jobs.overrides["every"].interval'],
      [{ every: { disabled: 'yes' } }, 'jobs.overrides["every"].disabled'],
      [{ every: { period: 5 } }, 'jobs.overrides["every"].period'],
      [{ nightly: { cron: '' } }, 'jobs.overrides["nightly"].cron'],
      [{ nightly: null }, 'jobs.overrides["nightly"]'],
      [[], 'jobs.overrides'],
    ];
    for (const [overrides, option] of cases) {
      const error = await bootError([Jobs], { jobs: { overrides: overrides as never } });
      expect(error, option).toBeInstanceOf(ConcurrencyOptionsError);
      expect(error.message, option).toContain(`"${option}`);
    }
  });
});

describe('JobRegistry.reschedule() on one instance', () => {
  beforeEach(() => vi.useFakeTimers({ now: new Date('2026-01-01T00:00:00Z') }));
  afterEach(() => vi.useRealTimers());

  it('changes a cron expression and an interval at runtime', async () => {
    const app = await bootJobs([Jobs]);
    const registry = app.get(JobRegistry);
    await registry.reschedule('nightly', '* * * * * *');
    await registry.reschedule('every', 1000);
    await vi.advanceTimersByTimeAsync(3100);
    expect(app.get(Jobs).cron).toBe(3);
    expect(app.get(Jobs).every).toBe(3);
    await closeFaked(app);
  });

  it('rejects a value the job does not take, naming the job, and keeps the schedule', async () => {
    const app = await bootJobs([Jobs]);
    const registry = app.get(JobRegistry);
    for (const [name, value] of [
      ['nightly', '61 * * * *'],
      ['nightly', 1000],
      ['every', '* * * * *'],
      ['every', 0],
      ['every', Number.NaN],
      ['once', 1000],
    ] as const) {
      const error = await registry.reschedule(name, value).catch((e: unknown) => e as Error);
      expect(error).toBeInstanceOf(InvalidJobError);
      expect((error as Error).message).toContain(`"${name}"`);
    }
    await expect(registry.reschedule('nope', 5)).rejects.toThrow(/No job named "nope"/);
    expect(registry.get('nightly').schedule).toBe('0 0 * * *');
    expect(registry.get('every').schedule).toBe(10_000);
    await closeFaked(app);
  });
});
