import { InvalidJobError } from '../errors/invalid-job.error.js';
import type { JobDefinition } from '../interfaces/job-definition.interface.js';
import { DUPLICATE_IN_SCHEDULER } from '../scheduling.messages.js';
import { ScheduledJob } from './scheduled-job.js';

type TimeoutSchedule = Extract<JobDefinition['schedule'], { kind: 'timeout' }>;

/** A `@Timeout` job: runs once, `ms` after bootstrap. Paused before it fires, it fires on resume if due by then. */
export class TimeoutScheduledJob extends ScheduledJob {
  readonly kind = 'timeout';
  #ref: ReturnType<typeof setTimeout> | undefined;
  /** When it is due, on the monotonic clock (a step of the wall clock must not move it). */
  #dueAt = 0;
  #mounted = false;
  #fired = false;

  schedule(): number {
    return (this.def.schedule as TimeoutSchedule).ms;
  }

  period(): number {
    return this.schedule();
  }

  mount(): void {
    if (this.host.schedulerRegistry.doesExist('timeout', this.def.name)) {
      throw new InvalidJobError(DUPLICATE_IN_SCHEDULER(this.def.name, this.def.where));
    }
    this.#mounted = true;
    this.#dueAt = performance.now() + this.schedule();
    if (!this.paused) this.#arm();
  }

  #arm(): void {
    const ref = setTimeout(this.#fire, Math.max(0, this.#dueAt - performance.now()));
    this.#ref = ref;
    const registry = this.host.schedulerRegistry;
    if (registry.doesExist('timeout', this.def.name)) registry.deleteTimeout(this.def.name);
    registry.addTimeout(this.def.name, ref);
  }

  #fire = (): void => {
    this.#ref = undefined;
    this.#fired = true;
    this.tick(new Date(Date.now() - Math.max(0, performance.now() - this.#dueAt)));
  };

  unmount(): void {
    this.#mounted = false;
    clearTimeout(this.#ref);
    this.#ref = undefined;
    const registry = this.host.schedulerRegistry;
    if (registry.doesExist('timeout', this.def.name)) registry.deleteTimeout(this.def.name);
  }

  pause(): void {
    this.paused = true;
    clearTimeout(this.#ref);
    this.#ref = undefined;
  }

  resume(): void {
    this.paused = false;
    this.resumed();
    if (this.#mounted && !this.#fired && !this.host.closing && this.#ref === undefined) this.#arm();
  }

  nextRunAt(): Date | null {
    return this.#ref === undefined ? null : new Date(Date.now() + (this.#dueAt - performance.now())); // in the past when the timer is late
  }
}
