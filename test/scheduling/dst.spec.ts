import { Injectable } from '@nestjs/common';
import * as schedule from '@nestjs/schedule';
import { Cron, type JobContext } from 'nestjs-concurrency';
import { bootJobs, closeFaked } from './utils/boot.js';

const DAY = 86_400_000;

/**
 * The transitions of 2030: New York springs forward on 10 March (02:00 -> 03:00) and falls back on 3 November
 * (02:00 -> 01:00); Berlin on 31 March (02:00 -> 03:00) and 27 October (03:00 -> 02:00).
 */
const transitions = [
  ['America/New_York', 'spring forward', '2030-03-09T00:00:00Z'],
  ['America/New_York', 'fall back', '2030-11-02T00:00:00Z'],
  ['Europe/Berlin', 'spring forward', '2030-03-30T00:00:00Z'],
  ['Europe/Berlin', 'fall back', '2030-10-26T00:00:00Z'],
] as const;

/** Expressions that meet the skipped or repeated hour, and a few that do not. */
const expressions = ['0 30 2 * * *', '0 30 1 * * *', '0 0 3 * * *', '0 0 * * * *', '0 15 */2 * * *'];

describe('cron across DST transitions: the same firings as @nestjs/schedule (fake timers)', () => {
  afterEach(() => vi.useRealTimers());

  it.each(transitions)('%s, %s', async (timeZone, _, start) => {
    vi.useFakeTimers({ now: new Date(start) });
    const ours: Record<string, number[]> = {};
    const upstream: Record<string, number[]> = {};
    const scheduled: Record<string, number[]> = {};
    const providers = expressions.map((expression, i) => {
      ours[expression] = [];
      upstream[expression] = [];
      scheduled[expression] = [];
      @Injectable()
      class Both {
        @Cron(expression, { name: `ours ${i}`, timeZone })
        mine(ctx: JobContext) {
          ours[expression].push(Date.now());
          scheduled[expression].push(ctx.scheduledAt.getTime());
        }

        // @nestjs/schedule's own decorator: its explorer (registered by ConcurrencyModule) schedules this one.
        @schedule.Cron(expression, { name: `upstream ${i}`, timeZone })
        theirs() {
          upstream[expression].push(Date.now());
        }
      }
      return Both;
    });
    const app = await bootJobs(providers);
    await vi.advanceTimersByTimeAsync(2 * DAY);
    for (const expression of expressions) {
      expect(upstream[expression].length, expression).toBeGreaterThan(0);
      expect(ours[expression], expression).toEqual(upstream[expression]);
      // Each run is named by the tick it fired for.
      expect(scheduled[expression], expression).toEqual(ours[expression]);
    }
    await closeFaked(app);
  });
});
