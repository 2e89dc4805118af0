import { CronTime } from 'cron';
import type { JobDefinition } from '../scheduling/interfaces/job-definition.interface.js';
import type { ScheduledJob } from '../scheduling/jobs/scheduled-job.js';

type Schedule = JobDefinition['schedule'];

/** One job on the tester's clock: when its next tick is due (Infinity: none). */
interface Entry {
  readonly job: ScheduledJob;
  next: number;
  /** A `@Timeout` that came due while paused: it fires once resumed (as its timer does). */
  waiting: boolean;
  readonly cron: CronTime | undefined;
}

/** cron's zone for a fixed UTC offset in minutes (what `CronTime.sendAt()` uses). */
function offsetZone(minutes: number): string {
  const sign = minutes < 0 ? '-' : '+';
  const abs = Math.abs(minutes);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `UTC${sign}${pad(Math.trunc(abs / 60))}:${pad(abs % 60)}`;
}

/**
 * Internal: the jobs' schedules on the tester's own clock, which moves only in `ConcurrencyTester.advance()`. Every
 * tick is computed as the job's timer would fire it: `@Interval` from boot + `initialDelay` then every `ms` (for
 * 'fixed-delay', `ms` after the previous run, which takes no time on this clock), `@Timeout` once, `ms` after boot,
 * `@Cron` at the next matching times from cron's own `CronTime` (time zone or UTC offset included).
 */
export class JobClock {
  now: number;
  readonly #entries: Entry[] = [];

  constructor(jobs: Iterable<ScheduledJob>, origin: number) {
    this.now = origin;
    for (const job of jobs) {
      const schedule = job.def.schedule;
      const cron = schedule.kind === 'cron' ? JobClock.cronTime(schedule) : undefined;
      const entry: Entry = { job, next: Infinity, waiting: false, cron };
      if (schedule.kind === 'interval') entry.next = origin + schedule.initialDelay;
      else if (schedule.kind === 'timeout') entry.next = origin + schedule.ms;
      else {
        // disabled: mounted paused in production; resume() starts it.
        if (schedule.disabled) job.pause();
        entry.next = this.#nextCron(entry, origin + schedule.initialDelay);
      }
      this.#entries.push(entry);
    }
  }

  private static cronTime(schedule: Extract<Schedule, { kind: 'cron' }>): CronTime {
    // The explorer has parsed it already (and refused both timeZone and utcOffset).
    return schedule.utcOffset != null
      ? new CronTime(schedule.cronTime, null, schedule.utcOffset)
      : new CronTime(schedule.cronTime, schedule.timeZone ?? undefined, null);
  }

  /**
   * The next tick due by `until`: the earliest (a tie goes to the job discovered first), or undefined. Ticks of a
   * paused job are passed over, as its stopped timer would.
   */
  take(until: number): { job: ScheduledJob; at: number } | undefined {
    for (;;) {
      let due: Entry | undefined;
      for (const entry of this.#entries) {
        if (entry.waiting && !entry.job.isPaused()) {
          entry.waiting = false;
          entry.next = this.now;
        }
        if (entry.next <= until && (due === undefined || entry.next < due.next)) due = entry;
      }
      if (due === undefined) return undefined;
      const at = Math.max(due.next, this.now);
      this.now = at;
      const paused = due.job.isPaused();
      this.#schedule(due, at, paused);
      if (!paused) return { job: due.job, at };
    }
  }

  /** The entry's following tick, after the one due at `at`. */
  #schedule(entry: Entry, at: number, paused: boolean): void {
    const schedule = entry.job.def.schedule;
    if (schedule.kind === 'timeout') {
      entry.next = Infinity;
      entry.waiting = paused;
    } else if (schedule.kind === 'interval') entry.next = at + schedule.ms;
    else entry.next = this.#nextCron(entry, at);
  }

  #nextCron(entry: Entry, after: number): number {
    const cron = entry.cron!;
    if (cron.realDate) {
      const at = (cron.source as { toMillis(): number }).toMillis();
      return at > after ? at : Infinity;
    }
    const zone = cron.utcOffset != null ? offsetZone(cron.utcOffset) : cron.timeZone;
    let next = cron.getNextDateFrom(new Date(after), zone).toMillis();
    // cron steps from the start's whole second: a start on a tick must not give the same tick again.
    while (next <= after) next = cron.getNextDateFrom(new Date(next + 1), zone).toMillis();
    return next;
  }
}
