import { Injectable } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { Cron, Interval, type JobContext, JobRegistry, TaskAbortedError } from 'nestjs-concurrency';
import { bootJobs } from './utils/boot.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('shutdown (real timers)', () => {
  it('app.close() stops the timers, waits for the running job, and no run starts after it', async () => {
    @Injectable()
    class Job {
      starts: number[] = [];
      ends: number[] = [];
      @Interval(50, { name: 'busy' })
      async run() {
        this.starts.push(Date.now());
        await sleep(300);
        this.ends.push(Date.now());
      }
    }
    const app = await bootJobs([Job]);
    const job = app.get(Job);
    await vi.waitFor(() => expect(job.starts).toHaveLength(1), { timeout: 2000 });
    const closeStartedAt = Date.now();
    await app.close();
    const closedAt = Date.now();
    // The run in progress finished before close resolved ...
    expect(job.ends).toHaveLength(1);
    expect(job.ends[0]).toBeLessThanOrEqual(closedAt);
    expect(closedAt - closeStartedAt).toBeGreaterThanOrEqual(150);
    // ... and nothing started after close began, then or later.
    // (<=: the first run may have started in the same millisecond as vi.waitFor saw it, just before close began)
    expect(job.starts.every((t) => t <= closeStartedAt)).toBe(true);
    await sleep(200);
    expect(job.starts).toHaveLength(1);
  });

  it('removes the jobs from SchedulerRegistry on close', async () => {
    @Injectable()
    class Job {
      @Interval(1000, { name: 'i' })
      a() {}
      @Cron('* * * * * *', { name: 'c' })
      b() {}
    }
    const app = await bootJobs([Job]);
    const registry = app.get(SchedulerRegistry);
    const cron = registry.getCronJob('c');
    await app.close();
    expect(registry.getIntervals()).toEqual([]);
    expect(cron.isActive).toBe(false);
  });

  it('aborts a run that outlives the shutdown timeout', async () => {
    @Injectable()
    class Job {
      signal?: AbortSignal;
      @Interval(20, { name: 'stubborn' })
      run(ctx: JobContext) {
        this.signal = ctx.signal;
        return new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
      }
    }
    const app = await bootJobs([Job], { shutdownTimeout: 200 });
    const job = app.get(Job);
    await vi.waitFor(() => expect(job.signal).toBeDefined(), { timeout: 2000 });
    const started = Date.now();
    await app.close();
    expect(Date.now() - started).toBeLessThan(2000);
    expect(job.signal!.aborted).toBe(true);
    expect(job.signal!.reason).toBeInstanceOf(TaskAbortedError);
  });

  it('refuses a trigger after close', async () => {
    @Injectable()
    class Job {
      calls = 0;
      @Interval(60_000, { name: 'rare' })
      run() {
        this.calls++;
      }
    }
    const app = await bootJobs([Job]);
    const registry = app.get(JobRegistry);
    await app.close();
    await expect(registry.trigger('rare')).rejects.toThrow(/shutting down/);
    expect(app.get(Job).calls).toBe(0);
  });
});
