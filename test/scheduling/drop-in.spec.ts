import { type INestApplication, Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import * as schedule from '@nestjs/schedule';
import { SchedulerRegistry } from '@nestjs/schedule';
import {
  ConcurrencyOptionsError,
  Cron,
  CronExpression,
  Interval,
  InvalidJobError,
  JobRegistry,
  Timeout,
  UnknownJobError,
} from 'nestjs-concurrency';
import { bootError, bootJobs } from './utils/boot.js';

// The same service an app would write with `import { Cron, Interval, Timeout } from '@nestjs/schedule'`.
@Injectable()
class Tasks {
  interval = 0;
  named = 0;
  timeout = 0;
  cron = 0;

  @Interval(1000)
  tick() {
    this.interval++;
  }

  @Interval('named-interval', 500)
  namedTick() {
    this.named++;
  }

  @Timeout('named-timeout', 2500)
  once() {
    this.timeout++;
  }

  @Cron(CronExpression.EVERY_SECOND, { name: 'every-second' })
  everySecond() {
    this.cron++;
  }
}

describe('drop-in for @nestjs/schedule', () => {
  beforeEach(() => vi.useFakeTimers({ now: new Date('2030-01-01T00:00:00.000Z') }));
  afterEach(() => vi.useRealTimers());

  it('calls the method inside the timer callback, so advanceTimersByTime sees the calls right after', async () => {
    const app = await bootJobs([Tasks]);
    const tasks = app.get(Tasks);
    vi.advanceTimersByTime(3000);
    expect(tasks.interval).toBe(3);
    expect(tasks.named).toBe(6);
    expect(tasks.timeout).toBe(1);
    expect(tasks.cron).toBe(3);
    await app.close();
  });

  it('registers the jobs in SchedulerRegistry: getIntervals, getTimeouts, getCronJob', async () => {
    const app = await bootJobs([Tasks]);
    const registry = app.get(SchedulerRegistry);
    expect(registry.getIntervals()).toEqual(expect.arrayContaining(['Tasks.tick', 'named-interval']));
    expect(registry.getTimeouts()).toEqual(['named-timeout']);
    expect(registry.getCronJob('every-second').isActive).toBe(true);
    expect(
      app
        .get(JobRegistry)
        .list()
        .map((job) => job.name),
    ).toEqual(expect.arrayContaining(['Tasks.tick', 'named-interval', 'named-timeout', 'every-second']));
    await app.close();
  });

  it('deleteCronJob stops the cron job, and getCronJob().stop()/start() control it', async () => {
    const app = await bootJobs([Tasks]);
    const tasks = app.get(Tasks);
    const registry = app.get(SchedulerRegistry);
    registry.getCronJob('every-second').stop();
    vi.advanceTimersByTime(2000);
    expect(tasks.cron).toBe(0);
    expect(app.get(JobRegistry).get('every-second').paused).toBe(true);
    registry.getCronJob('every-second').start();
    vi.advanceTimersByTime(2000);
    expect(tasks.cron).toBe(2);
    registry.deleteCronJob('every-second');
    vi.advanceTimersByTime(2000);
    expect(tasks.cron).toBe(2);
    expect(() => registry.getCronJob('every-second')).toThrow();
    await app.close();
  });

  it('deleteInterval stops an interval job', async () => {
    const app = await bootJobs([Tasks]);
    const tasks = app.get(Tasks);
    vi.advanceTimersByTime(1000);
    app.get(SchedulerRegistry).deleteInterval('Tasks.tick');
    vi.advanceTimersByTime(3000);
    expect(tasks.interval).toBe(1);
    await app.close();
  });

  it('shows an interval job deleted from SchedulerRegistry as stopped, and resume() brings it back', async () => {
    const app = await bootJobs([Tasks]);
    const tasks = app.get(Tasks);
    const jobs = app.get(JobRegistry);
    vi.advanceTimersByTime(1000);
    app.get(SchedulerRegistry).deleteInterval('Tasks.tick');
    expect(jobs.get('Tasks.tick')).toMatchObject({ paused: true, nextRunAt: null });
    jobs.resume('Tasks.tick');
    expect(jobs.get('Tasks.tick')).toMatchObject({ paused: false, nextRunAt: new Date(Date.now() + 1000) });
    expect(app.get(SchedulerRegistry).getIntervals()).toContain('Tasks.tick');
    vi.advanceTimersByTime(2000);
    expect(tasks.interval).toBe(3);
    await app.close();
    expect(app.get(SchedulerRegistry).getIntervals()).toEqual([]);
  });

  it('schedules the jobs of a provider also registered under an alias (useExisting) once', async () => {
    const app = await bootJobs([Tasks, { provide: 'TASKS_ALIAS', useExisting: Tasks } as never]);
    const tasks = app.get(Tasks);
    vi.advanceTimersByTime(10_000);
    expect(tasks.interval).toBe(10);
    expect(tasks.cron).toBe(10);
    expect(app.get(JobRegistry).list()).toHaveLength(4);
    await app.close();
  });

  it('is not scheduled a second time by @nestjs/schedule itself', async () => {
    const app = await bootJobs([Tasks]);
    const tasks = app.get(Tasks);
    vi.advanceTimersByTime(10_000);
    expect(tasks.interval).toBe(10);
    expect(tasks.cron).toBe(10);
    await app.close();
  });
});

// The same service on @nestjs/schedule itself, to compare what its SchedulerRegistry holds.
@Injectable()
class UpstreamTasks {
  @schedule.Interval(1000)
  tick() {}

  @schedule.Interval('named-interval', 500)
  namedTick() {}

  @schedule.Timeout('named-timeout', 2500)
  once() {}

  @schedule.Cron(CronExpression.EVERY_SECOND, { name: 'every-second' })
  everySecond() {}
}

function registered(app: INestApplication) {
  const registry = app.get(SchedulerRegistry);
  return {
    cronJobs: [...registry.getCronJobs().keys()],
    intervals: registry.getIntervals().length, // @nestjs/schedule names an unnamed one by a random id
    timeouts: registry.getTimeouts(),
  };
}

describe('jobs: { cronJobs, intervals, timeouts }, the switches of ScheduleModule.forRoot()', () => {
  beforeEach(() => vi.useFakeTimers({ now: new Date('2030-01-01T00:00:00.000Z') }));
  afterEach(() => vi.useRealTimers());

  it.each([
    ['cronJobs', 'every-second', 'cron'],
    ['intervals', 'named-interval', 'named'],
    ['timeouts', 'named-timeout', 'timeout'],
  ] as const)(
    '%s: false mounts no job of that kind, as ScheduleModule.forRoot() does',
    async (option, name, counter) => {
      const app = await bootJobs([Tasks], { jobs: { [option]: false } });
      const tasks = app.get(Tasks);
      vi.advanceTimersByTime(3000);
      expect(tasks[counter]).toBe(0);
      // The kinds left on run as usual.
      expect(tasks.interval + tasks.cron + tasks.timeout).toBeGreaterThan(0);

      @Module({ imports: [schedule.ScheduleModule.forRoot({ [option]: false })], providers: [UpstreamTasks] })
      class UpstreamModule {}
      const upstream = await NestFactory.create(UpstreamModule, { abortOnError: false, logger: false });
      await upstream.init();
      // SchedulerRegistry holds the same jobs as with @nestjs/schedule.
      expect(registered(app)).toEqual(registered(upstream));
      await upstream.close();

      // JobRegistry shows what SchedulerRegistry shows: the job is not there, and asking for it says why.
      const jobs = app.get(JobRegistry);
      expect(jobs.list().map((job) => job.name)).not.toContain(name);
      expect(() => jobs.get(name)).toThrow(UnknownJobError);
      expect(() => jobs.get(name)).toThrow(`Job "${name}" is not scheduled on this instance: jobs.${option} is false.`);
      await expect(async () => jobs.trigger(name)).rejects.toThrow(UnknownJobError);
      await app.close();
    },
  );

  it('still validates a switched-off job at boot (the same code boots on every instance)', async () => {
    @Injectable()
    class Broken {
      @Cron('61 * * * *')
      nightly() {}
    }
    const error = await bootError([Broken], { jobs: { cronJobs: false } });
    expect(error).toBeInstanceOf(InvalidJobError);
    expect(error.message).toContain('Broken.nightly()');
  });

  it('needs no lock store on an instance whose locked jobs are switched off', async () => {
    @Injectable()
    class Clustered {
      @Cron('* * * * * *', { lock: true })
      run() {}
    }
    const app = await bootJobs([Clustered], { jobs: { cronJobs: false } });
    expect(app.get(JobRegistry).list()).toEqual([]);
    await app.close();
  });

  it.each(['cronJobs', 'intervals', 'timeouts'])(
    'fails boot on a %s that is not a boolean, naming it',
    async (option) => {
      const error = await bootError([Tasks], { jobs: { [option]: 'no' } as never });
      expect(error).toBeInstanceOf(ConcurrencyOptionsError);
      expect(error.message).toBe(
        `Invalid ConcurrencyModule option "jobs.${option}": expected true or false, got "no".`,
      );
    },
  );
});
