import { Injectable } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { Cron, CronExpression, Interval, JobRegistry, Timeout } from 'nestjs-concurrency';
import { bootJobs } from './utils/boot.js';

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

  it('is not scheduled a second time by @nestjs/schedule itself', async () => {
    const app = await bootJobs([Tasks]);
    const tasks = app.get(Tasks);
    vi.advanceTimersByTime(10_000);
    expect(tasks.interval).toBe(10);
    expect(tasks.cron).toBe(10);
    await app.close();
  });
});
