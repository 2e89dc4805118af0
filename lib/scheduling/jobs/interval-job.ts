import { InvalidJobError } from '../errors/invalid-job.error.js';
import type { JobDefinition } from '../interfaces/job-definition.interface.js';
import { DUPLICATE_IN_SCHEDULER } from '../scheduling.messages.js';
import { ScheduledJob } from './scheduled-job.js';

type IntervalSchedule = Extract<JobDefinition['schedule'], { kind: 'interval' }>;

/**
 * An `@Interval` job. Fixed rate: a chain of timeouts aimed at start + n x ms, so lateness does not add up (Node's
 * setInterval re-arms from the moment it fired). Fixed delay: the next timeout is armed when the run ends. The
 * current timer is what `SchedulerRegistry.getInterval(name)` holds, so `deleteInterval(name)` stops the job.
 */
export class IntervalScheduledJob extends ScheduledJob {
  readonly kind = 'interval';
  #ref: ReturnType<typeof setTimeout> | undefined;
  /** The timer last put in SchedulerRegistry (still there during a fixed-delay run, after it fired). */
  #registered: ReturnType<typeof setTimeout> | undefined;
  #nextAt = 0;
  #mounted = false;

  get #schedule(): IntervalSchedule {
    return this.def.schedule as IntervalSchedule;
  }

  schedule(): number {
    return this.#schedule.ms;
  }

  protected override lockTime(scheduledAt: Date): Date {
    // Instances boot at different moments: name the tick by its slot of the epoch-aligned grid of `ms`.
    const at = scheduledAt.getTime();
    return new Date(at - (at % this.#schedule.ms));
  }

  mount(): void {
    if (this.host.schedulerRegistry.doesExist('interval', this.def.name)) {
      throw new InvalidJobError(DUPLICATE_IN_SCHEDULER(this.def.name, this.def.where));
    }
    this.#mounted = true;
    if (!this.paused) this.#arm(Date.now() + this.#schedule.initialDelay);
  }

  #arm(at: number): void {
    this.#nextAt = at;
    // The job rides along as the timer's argument: no closure per job or per tick.
    const ref = setTimeout(this.#schedule.mode === 'fixed-rate' ? onRate : onDelay, Math.max(0, at - Date.now()), this);
    this.#ref = ref;
    // Re-registered on every tick so that getInterval(name) is the live timer: clearInterval(getInterval(name)) and
    // deleteInterval(name) must stop the job as they stop a plain setInterval.
    const registry = this.host.schedulerRegistry;
    if (registry.doesExist('interval', this.def.name)) registry.deleteInterval(this.def.name);
    registry.addInterval(this.def.name, ref);
    this.#registered = ref;
  }

  /** `SchedulerRegistry.deleteInterval(name)` took the job's timer out: the job is stopped until `resume()`. */
  #removed(): boolean {
    if (this.#registered === undefined) return false;
    const registry = this.host.schedulerRegistry;
    return !registry.doesExist('interval', this.def.name) || registry.getInterval(this.def.name) !== this.#registered;
  }

  /** @internal */
  onRate(): void {
    const at = this.#nextAt;
    const { ms } = this.#schedule;
    const late = Date.now() - at;
    // Ticks the event loop was too busy to fire are dropped (and counted), not fired in a burst.
    const missed = late >= ms ? Math.floor(late / ms) : 0;
    this.skipped += missed;
    this.#arm(at + (missed + 1) * ms);
    this.tick(new Date(at));
  }

  /** @internal */
  onDelay(): void {
    this.#ref = undefined;
    this.tick(new Date(this.#nextAt), () => this.#afterRun());
  }

  #afterRun(): void {
    // deleteInterval(name) during the run stops the job, as it would stop a setInterval.
    if (this.paused || this.host.closing || this.#ref !== undefined || this.#removed()) return;
    this.#arm(Date.now() + this.#schedule.ms);
  }

  unmount(): void {
    this.#mounted = false;
    clearTimeout(this.#ref);
    this.#ref = undefined;
    if (this.#registered !== undefined && !this.#removed()) this.host.schedulerRegistry.deleteInterval(this.def.name);
    this.#registered = undefined;
  }

  pause(): void {
    this.paused = true;
    clearTimeout(this.#ref);
    this.#ref = undefined;
  }

  resume(): void {
    this.paused = false;
    if (this.#removed()) {
      // Deleted from SchedulerRegistry: resume brings the job back.
      clearTimeout(this.#ref);
      this.#ref = this.#registered = undefined;
    }
    // fixed-delay with a run going: the run's end arms the next tick.
    if (!this.#mounted || this.host.closing || this.#ref !== undefined) return;
    if (this.#schedule.mode === 'fixed-delay' && this.running > 0) return;
    this.#arm(Date.now() + this.#schedule.ms);
  }

  override isPaused(): boolean {
    return this.paused || this.#removed();
  }

  nextRunAt(): Date | null {
    return this.#ref === undefined || this.#removed() ? null : new Date(this.#nextAt);
  }
}

function onRate(job: IntervalScheduledJob): void {
  job.onRate();
}

function onDelay(job: IntervalScheduledJob): void {
  job.onDelay();
}
