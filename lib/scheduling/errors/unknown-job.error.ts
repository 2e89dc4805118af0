import { JOB_SWITCHED_OFF, UNKNOWN_JOB } from '../scheduling.messages.js';

/** `JobRegistry.get/trigger/pause/resume` with a name no job on this instance has. */
export class UnknownJobError extends Error {
  constructor(
    readonly job: string,
    readonly known: string[],
    /** Set when the job exists but its kind is switched off on this instance: the option, e.g. `jobs.cronJobs`. */
    readonly switchedOff?: string,
  ) {
    super(switchedOff ? JOB_SWITCHED_OFF(job, switchedOff, known) : UNKNOWN_JOB(job, known));
    this.name = 'UnknownJobError';
  }
}
