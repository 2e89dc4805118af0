import type { CronTime } from 'cron';
import { CATCH_UP_MAX_TICKS } from '../scheduling.constants.js';

/** Missed ticks, oldest first, and how many older ones were left out to stay within `CATCH_UP_MAX_TICKS`. Internal. */
export interface MissedTicks {
  ticks: number[];
  dropped: number;
}

/** A cron expression over every tick: a per-second cron over a day of window is 86,400 of them. */
const MAX_CRON_STEPS = 1_000_000;

/**
 * The slots of an interval's epoch-aligned grid (the ones that name its ticks in the lock) after `last`, at or after
 * `from` and before `until` (ms since the epoch). Internal.
 */
export function missedSlots(ms: number, last: number, from: number, until: number): MissedTicks {
  let start = Math.max(Math.floor(last / ms) * ms + ms, Math.ceil(from / ms) * ms);
  if (start >= until) return { ticks: [], dropped: 0 };
  const count = Math.ceil((until - start) / ms);
  const dropped = Math.max(0, count - CATCH_UP_MAX_TICKS);
  start += dropped * ms;
  const ticks: number[] = [];
  for (let t = start; t < until; t += ms) ticks.push(t);
  return { ticks, dropped };
}

/** The zone cron computes a schedule in: its time zone, its UTC offset, or UTC (as `CronTime.sendAt()` does). */
function cronZone(cron: CronTime): string {
  const { timeZone, utcOffset } = cron as unknown as { timeZone?: string; utcOffset?: number };
  if (timeZone) return timeZone;
  if (utcOffset === undefined || utcOffset === null) return 'UTC';
  const sign = utcOffset < 0 ? '-' : '+';
  const hours = Math.trunc(utcOffset / 60);
  const minutes = Math.abs(utcOffset - hours * 60);
  return `UTC${sign}${String(Math.abs(hours)).padStart(2, '0')}:${String(minutes).padStart(2, '0')}`;
}

/** The first tick of `cron` strictly after `at` (ms since the epoch). Internal. */
export function cronNext(cron: CronTime, at: number): number {
  return cron.getNextDateFrom(new Date(at), cronZone(cron)).toMillis();
}

/** The ticks of a cron expression after `last`, at or after `from` and before `until`. Internal. */
export function missedCronTicks(cron: CronTime, last: number, from: number, until: number): MissedTicks {
  const ticks: number[] = [];
  let dropped = 0;
  if (cron.realDate) return { ticks, dropped }; // a one-off date: nothing recurs to catch up
  // getNextDateFrom is strictly after its start: start just before `from` so that a tick exactly at `from` counts.
  let cursor = Math.max(last, from - 1);
  for (let step = 0; step < MAX_CRON_STEPS; step++) {
    const next = cronNext(cron, cursor);
    if (!(next < until) || next <= cursor) break;
    ticks.push(next);
    if (ticks.length > CATCH_UP_MAX_TICKS) {
      ticks.shift();
      dropped++;
    }
    cursor = next;
  }
  return { ticks, dropped };
}

/** The gap between a cron tick and the one after it: the schedule's period around `at`. Internal. */
export function cronPeriod(cron: CronTime, at: number): number {
  return cron.realDate ? 0 : cronNext(cron, at) - at;
}
