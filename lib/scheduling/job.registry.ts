import { Injectable } from '@nestjs/common';
import { UnknownJobError } from './errors/unknown-job.error.js';
import type { JobInfo } from './interfaces/job-info.interface.js';
import type { ScheduledJob } from './jobs/scheduled-job.js';

/**
 * The runtime API of scheduled jobs: inspect them, run one now, pause and resume. Inject it anywhere.
 *
 * @publicApi
 */
@Injectable()
export class JobRegistry {
  readonly #jobs = new Map<string, ScheduledJob>();
  /** Jobs of a kind switched off on this instance (`jobs.cronJobs: false`, ...): name -> the option. */
  readonly #off = new Map<string, string>();

  /**
   * Every job with its statistics. Jobs of a kind switched off on this instance (`jobs: { cronJobs: false }`, ...)
   * are not listed, as `SchedulerRegistry` does not hold them.
   */
  list(): JobInfo[] {
    return Array.from(this.#jobs.values(), (job) => job.info());
  }

  /** One job; throws `UnknownJobError` (listing the known names) for an unknown name. */
  get(name: string): JobInfo {
    return this.#job(name).info();
  }

  /**
   * Runs the job now on this instance, respecting `overlap`: resolves when the run ends, rejects with its error, or
   * with `JobRunningError` when a run is going and overlap is `'skip'`. The tick's lease is bypassed; with a lock and
   * overlap `'skip'` the job's running lease is not (a run going on another instance rejects it too, and a lock store
   * failure rejects with the lock's error). Works while paused too.
   */
  trigger(name: string): Promise<void> {
    return this.#job(name).trigger();
  }

  /** Stops the job's timer; a run in progress goes on. */
  pause(name: string): void {
    this.#job(name).pause();
  }

  /** Starts the timer again: the next tick is one schedule period away (for cron, the next matching time). */
  resume(name: string): void {
    this.#job(name).resume();
  }

  /** @internal */
  add(job: ScheduledJob): void {
    this.#jobs.set(job.name, job);
  }

  /** @internal */
  switchedOff(name: string, option: string): void {
    this.#off.set(name, option);
  }

  /** @internal */
  jobs(): Iterable<ScheduledJob> {
    return this.#jobs.values();
  }

  #job(name: string): ScheduledJob {
    const job = this.#jobs.get(name);
    if (!job) throw new UnknownJobError(name, [...this.#jobs.keys()], this.#off.get(name));
    return job;
  }
}
