import { UNKNOWN_JOB } from '../scheduling.messages.js';

/** `JobRegistry.get/trigger/pause/resume` with a name no job has. */
export class UnknownJobError extends Error {
  constructor(
    readonly job: string,
    readonly known: string[],
  ) {
    super(UNKNOWN_JOB(job, known));
    this.name = 'UnknownJobError';
  }
}
