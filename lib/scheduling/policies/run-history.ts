import type { LoggerService } from '@nestjs/common';
import type { JobLock } from '../interfaces/job-lock.interface.js';
import type { JobRun } from '../interfaces/job-run.interface.js';
import { LockTimeoutError } from '../errors/lock-timeout.error.js';
import { withTimeout } from '../../utils/with-timeout.js';
import { errorMessage } from '../../utils/describe.js';
import { HISTORY_STORE_FAILED, HISTORY_STORE_RECOVERED } from '../scheduling.messages.js';

/** The longest error message a run keeps. */
export const RUN_ERROR_MAX = 500;

type Store = Required<Pick<JobLock, 'addRun' | 'runs'>>;

/** The store's history methods, when it has both. */
export function historyStore(lock: JobLock | undefined): Store | undefined {
  return lock && typeof lock.addRun === 'function' && typeof lock.runs === 'function' ? (lock as Store) : undefined;
}

/**
 * The runs of every job: the newest `keep` per job in memory on this instance, and, when the lock store keeps history,
 * in the store too (the cluster's history). A store write is bounded by `timeout` and never fails a run: a failure is
 * logged once until the store answers again. Internal.
 */
export class RunHistory {
  /** Per job, newest last, at most `keep`. */
  readonly #local = new Map<string, JobRun[]>();
  #failing = false;

  constructor(
    readonly keep: number,
    readonly store: Store | undefined,
    private readonly timeout: number,
    private readonly logger: LoggerService,
  ) {}

  record(job: string, run: JobRun): void {
    if (this.keep === 0) return;
    let runs = this.#local.get(job);
    if (!runs) this.#local.set(job, (runs = []));
    runs.push(run);
    if (runs.length > this.keep) runs.shift();
    const store = this.store;
    if (!store) return;
    let write: Promise<void>;
    try {
      write = Promise.resolve(store.addRun(job, run, this.keep));
    } catch (error) {
      write = Promise.reject(error);
    }
    void withTimeout(write, this.timeout, () => new LockTimeoutError('addRun', this.timeout)).then(
      () => {
        if (!this.#failing) return;
        this.#failing = false;
        this.logger.log(HISTORY_STORE_RECOVERED());
      },
      (error: unknown) => {
        if (this.#failing) return;
        this.#failing = true;
        this.logger.warn(HISTORY_STORE_FAILED(job, errorMessage(error)));
      },
    );
  }

  /** Newest first: the cluster's (from the store) when there is one, else this instance's. */
  async list(job: string, limit: number): Promise<JobRun[]> {
    const store = this.store;
    // LRANGE 0 -1 would be the whole list: with history off (keep 0), runs left by an earlier config are not shown.
    if (this.keep === 0 || limit <= 0) return [];
    if (!store) return this.local(job, limit);
    return withTimeout(
      Promise.resolve().then(() => store.runs(job, Math.min(limit, this.keep))),
      this.timeout,
      () => new LockTimeoutError('runs', this.timeout),
    );
  }

  /** This instance's runs of the job, newest first. */
  local(job: string, limit: number): JobRun[] {
    const runs = this.#local.get(job) ?? [];
    return runs.slice(Math.max(0, runs.length - limit)).reverse();
  }
}
