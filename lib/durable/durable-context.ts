import type { Job } from 'bullmq';
import { errorMessage } from '../utils/describe.js';
import { withTimeout } from '../utils/with-timeout.js';
import { fromJobId } from './utils/job-id.util.js';
import { STORE_UNAVAILABLE } from './durable.messages.js';
import { DurableUnavailableError } from './errors/durable.errors.js';
import type { DurableTaskContext } from './interfaces/durable-options.interface.js';

/** @internal The context of one attempt: one object per attempt, `progress` on the prototype. */
export class DurableContext implements DurableTaskContext {
  readonly id: string;
  readonly attempt: number;

  constructor(
    private readonly job: Job,
    readonly signal: AbortSignal,
    private readonly storeTimeout: number,
  ) {
    this.id = fromJobId(job.id as string);
    this.attempt = job.attemptsMade + 1;
  }

  /** Bounded by `durable.storeTimeout`, as every Redis call is: a handler never hangs on a Redis that does not answer. */
  async progress(value: number | object): Promise<void> {
    const task = this.job.name;
    const ms = this.storeTimeout;
    try {
      await withTimeout(this.job.updateProgress(value), ms, () => new DurableUnavailableError(task, ''));
    } catch (error) {
      const timedOut = error instanceof DurableUnavailableError;
      const cause = timedOut ? 'timeout' : errorMessage(error);
      throw new DurableUnavailableError(
        task,
        STORE_UNAVAILABLE('progress', task, ms, cause),
        timedOut ? undefined : error,
      );
    }
  }
}
