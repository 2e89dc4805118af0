import { CronJob, CronTime } from 'cron';
import { InvalidJobError } from '../errors/invalid-job.error.js';
import type { JobDefinition } from '../interfaces/job-definition.interface.js';
import { DUPLICATE_IN_SCHEDULER } from '../scheduling.messages.js';
import { ScheduledJob } from './scheduled-job.js';
import { cronNext, cronPeriod, type MissedTicks, missedCronTicks } from '../policies/catch-up.js';

type CronSchedule = Extract<JobDefinition['schedule'], { kind: 'cron' }>;

/**
 * A `cron` CronJob that remembers the nominal time of each tick. cron re-arms (`start()`) right before it fires, so
 * inside `onTick` `nextDate()` already names the following tick: capture the one being fired as it is re-armed.
 */
export class NominalCronJob extends CronJob<null, null> {
  /** The tick the armed timer is for. */
  armedFor: Date | undefined;
  /** The tick the timer last re-armed from (cron calls `start()` right before it fires). */
  #rearmedFrom: Date | undefined;
  /** The tick now firing; undefined for a fire that is not the timer's (`fireOnTick()` by hand). */
  firing: Date | undefined;
  #lastExecution: Date | null = null;

  override start(): void {
    if (this.isActive) return;
    this.#rearmedFrom = this.armedFor;
    super.start();
    this.armedFor = this.isActive ? this.nextDate().toJSDate() : undefined;
  }

  override fireOnTick(): Promise<void> {
    // cron stamps a new `lastExecution` right before every fire of its timer; a call by hand leaves it as it was.
    const last = this.lastDate();
    const byTimer = last !== null && last !== undefined && last !== this.#lastExecution;
    this.#lastExecution = last;
    this.firing = byTimer ? (this.runOnce ? this.armedFor : this.#rearmedFrom) : undefined;
    return super.fireOnTick();
  }
}

/** A `@Cron` job, registered in `SchedulerRegistry` as a real `CronJob` (getCronJob/deleteCronJob control it). */
export class CronScheduledJob extends ScheduledJob {
  readonly kind = 'cron';
  #job: NominalCronJob | undefined;
  #delay: ReturnType<typeof setTimeout> | undefined;
  /** The last tick the timer fired (catchUp: a gap since it is a stall). */
  #lastFiring: Date | undefined;

  get #schedule(): CronSchedule {
    return this.def.schedule as CronSchedule;
  }

  schedule(): string {
    const { cronTime } = this.#schedule;
    return cronTime instanceof Date ? cronTime.toISOString() : String(cronTime);
  }

  /** Builds the CronJob: throws cron's error for an invalid expression or time zone (the explorer wraps it). */
  static create(s: CronSchedule, name: string, onTick: () => void): NominalCronJob {
    const { cronTime, timeZone, utcOffset, unrefTimeout, threshold } = s;
    // cron types timeZone and utcOffset as exclusive overloads; the explorer has refused both at once already.
    return new NominalCronJob(
      cronTime,
      onTick,
      null,
      false,
      timeZone,
      null,
      false,
      utcOffset as null | undefined,
      unrefTimeout,
      false,
      undefined,
      name,
      threshold,
    );
  }

  period(): number {
    const job = this.#job;
    const at = job?.armedFor ?? job?.nextDate().toJSDate();
    return job && at ? cronPeriod(job.cronTime, at.getTime()) : 0;
  }

  mount(): void {
    const job = CronScheduledJob.create(this.#schedule, this.def.name, () => this.#onTick(job));
    const registry = this.host.schedulerRegistry;
    if (registry.doesExist('cron', this.def.name)) {
      throw new InvalidJobError(DUPLICATE_IN_SCHEDULER(this.def.name, this.def.where));
    }
    registry.addCronJob(this.def.name, job as unknown as CronJob);
    this.#job = job;
    if (this.#schedule.disabled) this.paused = true;
    if (this.paused) return;
    const { initialDelay } = this.#schedule;
    if (initialDelay > 0) {
      this.#delay = setTimeout(() => {
        this.#delay = undefined;
        if (!this.host.closing && this.#registered()) job.start();
      }, initialDelay);
    } else {
      job.start();
    }
    // catchUp: the ticks no instance ran while this one was down.
    if (this.def.catchUp !== undefined) void this.catchUp(Date.now() + 1);
  }

  protected override missedTicks(last: number, from: number, until: number): MissedTicks {
    return this.#job ? missedCronTicks(this.#job.cronTime, last, from, until) : { ticks: [], dropped: 0 };
  }

  #onTick(job: NominalCronJob): void {
    // Fired some other way (fireOnTick() by hand): name the tick by the time it fired, not by the previous tick.
    const firing = job.firing;
    const previous = this.#lastFiring;
    if (firing !== undefined) this.#lastFiring = firing;
    if (this.def.catchUp !== undefined && firing !== undefined && this.#stalled(job, previous, firing)) {
      // A stall: the ticks missed (this late one included) are caught up, oldest first.
      void this.catchUp(Date.now() + 1, firing);
      return;
    }
    this.tick(firing ?? new Date());
  }

  /** Ticks were missed: one fell between the previous fire and this one, or one after this is due already. */
  #stalled(job: NominalCronJob, previous: Date | undefined, firing: Date): boolean {
    const cron = job.cronTime;
    if (cron.realDate) return false;
    if (previous !== undefined && cronNext(cron, previous.getTime()) < firing.getTime()) return true;
    return cronNext(cron, firing.getTime()) <= Date.now();
  }

  #registered(): boolean {
    const registry = this.host.schedulerRegistry;
    return registry.doesExist('cron', this.def.name) && registry.getCronJob(this.def.name) === this.#job;
  }

  unmount(): void {
    this.stopCatchUp();
    clearTimeout(this.#delay);
    this.#delay = undefined;
    if (!this.#job) return;
    if (this.#registered()) this.host.schedulerRegistry.deleteCronJob(this.def.name);
    else void this.#job.stop();
  }

  pause(): void {
    this.paused = true;
    clearTimeout(this.#delay);
    this.#delay = undefined;
    void this.#job?.stop();
  }

  resume(): void {
    this.paused = false;
    this.resumed();
    if (this.#job && !this.host.closing && !this.#job.isActive) this.#job.start();
  }

  override isPaused(): boolean {
    // Also stopped through SchedulerRegistry (getCronJob(name).stop(), deleteCronJob(name)).
    return this.#job ? !this.#job.isActive && !this.#delay : this.paused;
  }

  nextRunAt(): Date | null {
    return this.#job?.isActive ? (this.#job.armedFor ?? null) : null;
  }

  /** A new expression (same time zone): throws cron's error when it does not parse; a paused job stays paused. */
  reschedule(cronTime: string): void {
    const s = this.#schedule;
    const time = new CronTime(cronTime, s.timeZone as null | undefined, s.utcOffset as null | undefined);
    s.cronTime = cronTime;
    this.#job?.setTime(time);
  }
}
