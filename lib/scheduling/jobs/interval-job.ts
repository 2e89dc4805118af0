import { InvalidJobError } from '../errors/invalid-job.error.js';
import type { JobDefinition } from '../interfaces/job-definition.interface.js';
import { DUPLICATE_IN_SCHEDULER } from '../scheduling.messages.js';
import { ScheduledJob } from './scheduled-job.js';
import { type MissedTicks, missedSlots } from '../policies/catch-up.js';

/** A change of the wall clock against the monotonic one beyond this is a step (ms). */
const CLOCK_STEP_MS = 50;

type IntervalSchedule = Extract<JobDefinition['schedule'], { kind: 'interval' }>;

/**
 * An `@Interval` job. Fixed rate: a chain of timeouts aimed at start + n x ms, so lateness does not add up (Node's
 * setInterval re-arms from the moment it fired). Fixed delay: the next timeout is armed when the run ends. The
 * current timer is what `SchedulerRegistry.getInterval(name)` holds, so `deleteInterval(name)` stops the job.
 *
 * The targets are on the monotonic clock (`performance.now()`, what Node's timers run on): a step of the wall clock
 * neither stalls the job nor counts phantom skips. The wall clock only names each tick (`scheduledAt`, lock key).
 */
export class IntervalScheduledJob extends ScheduledJob {
  readonly kind = 'interval';
  #ref: ReturnType<typeof setTimeout> | undefined;
  /** The timer last put in SchedulerRegistry (still there during a fixed-delay run, after it fired). */
  #registered: ReturnType<typeof setTimeout> | undefined;
  /** The armed tick, on the monotonic clock. */
  #nextAt = 0;
  /** Wall clock minus monotonic clock, as last taken (see #wallTime). */
  #offset = Number.NaN;
  #mounted = false;

  get #schedule(): IntervalSchedule {
    return this.def.schedule as IntervalSchedule;
  }

  schedule(): number {
    return this.#schedule.ms;
  }

  period(): number {
    return this.#schedule.ms;
  }

  protected override lockTime(scheduledAt: Date): Date {
    // Instances boot at different moments: name the tick by its slot of the epoch-aligned grid of `ms`.
    const at = scheduledAt.getTime();
    return new Date(at - (at % this.#schedule.ms));
  }

  protected override leaseMs(scheduledAt: Date): number {
    // Every instance ticks once somewhere in the slot: the lease must outlive the slot (plus ttl, which covers the
    // clock skew between instances), however short ttl is. A tick's own ttl still bounds a run that outlives that.
    const ttl = super.leaseMs(scheduledAt);
    const slotEnd = this.lockTime(scheduledAt).getTime() + this.#schedule.ms;
    return Math.max(ttl, slotEnd - Date.now() + ttl);
  }

  mount(): void {
    if (this.host.schedulerRegistry.doesExist('interval', this.def.name)) {
      throw new InvalidJobError(DUPLICATE_IN_SCHEDULER(this.def.name, this.def.where));
    }
    this.#mounted = true;
    if (this.paused) return;
    this.#arm(performance.now() + this.#schedule.initialDelay);
    // catchUp: the slots no instance ran while this one was down.
    if (this.def.catchUp !== undefined) void this.catchUp(Date.now() + 1);
  }

  protected override missedTicks(last: number, from: number, until: number): MissedTicks {
    return missedSlots(this.#schedule.ms, last, from, until);
  }

  #arm(at: number): void {
    this.#nextAt = at;
    // The job rides along as the timer's argument: no closure per job or per tick.
    const ref = setTimeout(
      this.#schedule.mode === 'fixed-rate' ? onRate : onDelay,
      Math.max(0, at - performance.now()),
      this,
    );
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
    const late = Math.max(0, performance.now() - at);
    // Ticks the event loop was too busy to fire are dropped (and counted), not fired in a burst.
    const missed = late >= ms ? Math.floor(late / ms) : 0;
    this.#arm(at + (missed + 1) * ms);
    if (missed > 0 && this.def.catchUp !== undefined) {
      // A stall: the missed slots (and this one) are caught up, oldest first, unless another instance ran them.
      void this.catchUp(Date.now() + 1, this.#wallTime(at));
      return;
    }
    this.skipped += missed;
    this.tick(this.#wallTime(at));
  }

  /** @internal */
  onDelay(): void {
    this.#ref = undefined;
    this.tick(this.#wallTime(this.#nextAt), () => this.#afterRun());
  }

  /**
   * The wall-clock name of a monotonic time. The offset between the clocks is kept while it moves by less than
   * `CLOCK_STEP_MS` (two clock reads and NTP slewing jitter by a few ms; names must stay exactly ms apart, or two ticks
   * could fall in one lock slot) and taken again after a step of the wall clock.
   */
  #wallTime(at: number): Date {
    const offset = Date.now() - performance.now();
    if (!(Math.abs(offset - this.#offset) < CLOCK_STEP_MS)) this.#offset = offset;
    return new Date(Math.round(at + this.#offset));
  }

  protected override runSettled(): void {
    // A fixed-delay job resumed while a run (a tick's or a trigger()'s) was going is armed by the run's end.
    if (this.#schedule.mode === 'fixed-delay' && this.running === 0) this.#afterRun();
  }

  #afterRun(): void {
    // deleteInterval(name) during the run stops the job, as it would stop a setInterval.
    if (!this.#mounted || this.paused || this.host.closing || this.#ref !== undefined || this.#removed()) return;
    this.#arm(performance.now() + this.#schedule.ms);
  }

  unmount(): void {
    this.stopCatchUp();
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
    this.resumed();
    if (this.#removed()) {
      // Deleted from SchedulerRegistry: resume brings the job back.
      clearTimeout(this.#ref);
      this.#ref = this.#registered = undefined;
    }
    // fixed-delay with a run going: the run's end arms the next tick.
    if (!this.#mounted || this.host.closing || this.#ref !== undefined) return;
    if (this.#schedule.mode === 'fixed-delay' && this.running > 0) return;
    this.#arm(performance.now() + this.#schedule.ms);
  }

  override isPaused(): boolean {
    return this.paused || this.#removed();
  }

  /** A new period: an armed timer is re-armed one new period from now; a paused job stays paused. */
  reschedule(ms: number): void {
    const s = this.#schedule;
    if (s.ms === ms) return;
    s.ms = ms;
    if (this.#ref === undefined) return;
    clearTimeout(this.#ref);
    this.#ref = undefined;
    this.#arm(performance.now() + ms);
  }

  nextRunAt(): Date | null {
    return this.#ref === undefined || this.#removed()
      ? null
      : new Date(Date.now() + (this.#nextAt - performance.now())); // in the past when the timer is late
  }
}

function onRate(job: IntervalScheduledJob): void {
  job.onRate();
}

function onDelay(job: IntervalScheduledJob): void {
  job.onDelay();
}
