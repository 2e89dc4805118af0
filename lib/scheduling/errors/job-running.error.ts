import { ALREADY_RUNNING } from '../scheduling.messages.js';

/** `JobRegistry.trigger()` of a job that is running and does not allow overlap. */
export class JobRunningError extends Error {
  constructor(readonly job: string) {
    super(ALREADY_RUNNING(job));
    this.name = 'JobRunningError';
  }
}
