import { Injectable } from '@nestjs/common';
import { CronTime } from 'cron';
import { UnknownJobError } from './errors/unknown-job.error.js';
import { InvalidJobError } from './errors/invalid-job.error.js';
import type { JobInfo } from './interfaces/job-info.interface.js';
import type { JobRun } from './interfaces/job-run.interface.js';
import type { ScheduledJob } from './jobs/scheduled-job.js';
import { CronScheduledJob } from './jobs/cron-job.js';
import { IntervalScheduledJob } from './jobs/interval-job.js';
import type { JobsOrchestrator } from './jobs.orchestrator.js';
import { INVALID_HISTORY_LIMIT, RESCHEDULE_INVALID } from './scheduling.messages.js';
import { errorMessage } from '../utils/describe.js';

/** setTimeout's largest delay; a longer one fires after 1 ms. */
const MAX_DELAY = 2_147_483_647;

/**
 * The runtime API of scheduled jobs: inspect them, run one now, pause and resume, change a schedule, read the runs.
 * Inject it anywhere. With a lock store that keeps the cluster's state (`RedisJobLock`, `InMemoryJobLock`), `pause()`,
 * `resume()`, `reschedule()` and `history()` are the cluster's.
 *
 * @publicApi
 */
@Injectable()
export class JobRegistry {
  readonly #jobs = new Map<string, ScheduledJob>();
  /** Jobs of a kind switched off on this instance (`jobs.cronJobs: false`, ...): name -> the option. */
  readonly #off = new Map<string, string>();
  #host: JobsOrchestrator | undefined;

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

  /**
   * Stops the job's timer; a run in progress goes on. With a lock store that keeps the cluster's state, every
   * instance pauses the job within a second and an instance that boots later starts it paused; the state is written
   * in the background (retried until the store takes it).
   */
  pause(name: string): void {
    this.#job(name).pause();
    this.#host?.control?.setPaused(name, true);
  }

  /**
   * Starts the timer again: the next tick is one schedule period away (for cron, the next matching time). With a
   * lock store that keeps the cluster's state, on every instance within a second.
   */
  resume(name: string): void {
    this.#job(name).resume();
    this.#host?.control?.setPaused(name, false);
  }

  /**
   * The job's finished runs, newest first, at most `limit` (default and maximum: `jobs.history`, default 50). With a
   * lock store that keeps history (`RedisJobLock`), the runs of every instance, kept across restarts; else this
   * instance's. Rejects with `UnknownJobError` for an unknown name, and with the store's error (or
   * `LockTimeoutError`) when the store does not answer.
   */
  async history(name: string, opts: { limit?: number } = {}): Promise<JobRun[]> {
    if (!this.#jobs.has(name) && !(this.#off.has(name) && this.#host?.history.store)) this.#job(name);
    const limit = (opts as { limit?: unknown } | undefined)?.limit;
    if (limit !== undefined && !(typeof limit === 'number' && Number.isInteger(limit) && limit > 0)) {
      throw new InvalidJobError(INVALID_HISTORY_LIMIT(name, limit));
    }
    const history = this.#host?.history;
    if (!history) return [];
    return history.list(name, Math.min(limit ?? history.keep, history.keep));
  }

  /**
   * Changes the job's schedule: a cron expression for a `@Cron` job (its time zone is kept), ms for an `@Interval`
   * job. With a lock store that keeps the cluster's state, it is stored first (rejects, changing nothing, when the
   * store fails) and every instance applies it within a second; instances that boot later apply it too, until a
   * deploy changes the job's configured schedule (decorator or `jobs.overrides`): then the configuration wins.
   */
  async reschedule(name: string, cronOrMs: string | number): Promise<void> {
    const job = this.#job(name);
    this.#validate(job, cronOrMs);
    const host = this.#host;
    const base = host?.configured(name);
    if (host?.control && base !== undefined) await host.control.setSchedule(name, { value: cronOrMs, base });
    this.applySchedule(name, cronOrMs);
  }

  /** @internal This instance's runs of the job, newest first (the dashboard's fallback when the store is slow). */
  localHistory(name: string, limit: number): JobRun[] {
    return this.#host?.history.local(name, limit) ?? [];
  }

  /** @internal */
  attach(host: JobsOrchestrator): void {
    this.#host = host;
  }

  /** @internal */
  add(job: ScheduledJob): void {
    this.#jobs.set(job.name, job);
  }

  /** @internal */
  has(name: string): boolean {
    return this.#jobs.has(name);
  }

  /** @internal The cluster's pause state, applied here only. */
  apply(name: string, paused: boolean): void {
    const job = this.#jobs.get(name);
    if (!job) return;
    if (paused) job.pause();
    else job.resume();
  }

  /** @internal A schedule applied here only; throws for a value the job does not take. */
  applySchedule(name: string, cronOrMs: string | number): void {
    const job = this.#job(name);
    this.#validate(job, cronOrMs);
    if (job instanceof CronScheduledJob) {
      if (job.schedule() !== cronOrMs) job.reschedule(cronOrMs as string);
    } else if (job instanceof IntervalScheduledJob) job.reschedule(cronOrMs as number);
  }

  /** @internal */
  switchedOff(name: string, option: string): void {
    this.#off.set(name, option);
  }

  /** @internal Every known name, mounted here or not (for `jobs.overrides`). */
  names(): string[] {
    return [...this.#jobs.keys(), ...this.#off.keys()];
  }

  /** @internal */
  jobs(): Iterable<ScheduledJob> {
    return this.#jobs.values();
  }

  #validate(job: ScheduledJob, value: unknown): void {
    if (job instanceof CronScheduledJob) {
      if (typeof value !== 'string') throw new InvalidJobError(RESCHEDULE_INVALID(job.name, 'cron', value));
      const s = job.def.schedule as { timeZone?: string; utcOffset?: number };
      try {
        new CronTime(value, s.timeZone as null | undefined, s.utcOffset as null | undefined);
      } catch (error) {
        throw new InvalidJobError(RESCHEDULE_INVALID(job.name, 'cron', value, errorMessage(error)), { cause: error });
      }
      return;
    }
    if (job instanceof IntervalScheduledJob) {
      const ok = typeof value === 'number' && Number.isFinite(value) && value > 0 && value <= MAX_DELAY;
      if (!ok) throw new InvalidJobError(RESCHEDULE_INVALID(job.name, 'interval', value));
      return;
    }
    throw new InvalidJobError(RESCHEDULE_INVALID(job.name, job.kind, value));
  }

  #job(name: string): ScheduledJob {
    const job = this.#jobs.get(name);
    if (!job) throw new UnknownJobError(name, [...this.#jobs.keys()], this.#off.get(name));
    return job;
  }
}
