import type { Job } from 'bullmq';
import type { DurableTaskContext } from './interfaces/durable-options.interface.js';

/** @internal The context of one attempt: one object per attempt, `progress` on the prototype. */
export class DurableContext implements DurableTaskContext {
  readonly id: string;
  readonly attempt: number;

  constructor(
    private readonly job: Job,
    readonly signal: AbortSignal,
  ) {
    this.id = job.id as string;
    this.attempt = job.attemptsMade + 1;
  }

  progress(value: number | object): Promise<void> {
    return this.job.updateProgress(value);
  }
}
