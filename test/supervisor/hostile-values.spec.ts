import { Logger } from '@nestjs/common';
import fc from 'fast-check';
import { type SupervisorEvent, TaskSupervisor } from 'nestjs-concurrency';
import type { MockInstance } from 'vitest';
import { ending, expected, perform, processFaults, trappedProxy } from '../utils/hostile-values.js';

/**
 * Any value a child throws, rejects with or returns is that child's outcome, never the supervisor's or the process's:
 * no unhandled rejection or uncaught exception, later children still start, restarts still happen, and the events
 * add up.
 */

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

let errorLog: MockInstance<(...args: unknown[]) => void>;
beforeEach(() => {
  errorLog = vi.spyOn(Logger.prototype, 'error').mockImplementation(() => {});
});
afterEach(() => vi.restoreAllMocks());

/** Resolves once `count` events of the given types have been seen (rejects after a generous bound). */
function untilEvents(sup: TaskSupervisor, types: SupervisorEvent['type'][], count: number): Promise<SupervisorEvent[]> {
  const seen: SupervisorEvent[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`saw ${seen.length} of ${count} events`)), 5000);
    const subscription = sup.events.subscribe((event) => {
      if (!types.includes(event.type)) return;
      seen.push(event);
      if (seen.length === count) {
        clearTimeout(timer);
        subscription.unsubscribe();
        resolve(seen);
      }
    });
  });
}

describe('TaskSupervisor: hostile values (property-based)', () => {
  it('startChild: every ending settles that child only; later children run; counts add up', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(ending(), { minLength: 1, maxLength: 12 }), async (endings) => {
        errorLog.mockClear();
        const sup = new TaskSupervisor('hostile');
        const faults = await processFaults(async () => {
          const done = untilEvents(sup, ['completed', 'failed'], endings.length + 1);
          endings.forEach((e, i) => sup.startChild(() => perform(e), { name: `child-${i}` }));
          // A child started after all of them still runs: nothing froze the start queue.
          let sentinelRan = false;
          sup.startChild(() => void (sentinelRan = true), { name: 'sentinel' });
          const events = await done;
          expect(sentinelRan).toBe(true);
          for (const [i, e] of endings.entries()) {
            const event = events.find((ev) => ev.name === `child-${i}`)!;
            const want = expected(e);
            expect(event.type).toBe(want.failed ? 'failed' : 'completed');
            if (want.failed) expect(Object.is(event.error, want.value)).toBe(true);
          }
          const failures = endings.filter((e) => expected(e).failed).length;
          expect(errorLog).toHaveBeenCalledTimes(failures);
          for (const call of errorLog.mock.calls) expect(typeof call[0]).toBe('string');
          expect(sup.children()).toEqual([]);
        });
        expect(faults).toEqual([]);
      }),
      { numRuns: 60 },
    );
  });

  it('async(): the Task gets exactly the thrown/returned value; nothing is logged', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(ending(), { minLength: 1, maxLength: 12 }), async (endings) => {
        errorLog.mockClear();
        const sup = new TaskSupervisor('hostile');
        const faults = await processFaults(async () => {
          const tasks = endings.map((e) => sup.async(() => perform(e)));
          for (const [i, task] of tasks.entries()) {
            const outcome = (await task.yield(5000))!;
            const want = expected(endings[i]);
            expect(outcome.status).toBe(want.failed ? 'rejected' : 'fulfilled');
            const got = outcome.status === 'rejected' ? outcome.reason : outcome.value;
            expect(Object.is(got, want.value)).toBe(true);
          }
          expect(errorLog).not.toHaveBeenCalled();
        });
        expect(faults).toEqual([]);
      }),
      { numRuns: 60 },
    );
  });

  it('a transient child that fails with a hostile value is restarted, and its next attempt runs', async () => {
    await fc.assert(
      fc.asyncProperty(
        ending().filter((e) => expected(e).failed),
        async (e) => {
          const sup = new TaskSupervisor('hostile');
          const faults = await processFaults(async () => {
            const done = untilEvents(sup, ['completed'], 1);
            const attempts: number[] = [];
            sup.startChild(
              (ctx) => {
                attempts.push(ctx.attempt);
                return ctx.attempt === 1 ? perform(e) : 'ok';
              },
              { restart: 'transient' },
            );
            await done;
            expect(attempts).toEqual([1, 2]);
          });
          expect(faults).toEqual([]);
        },
      ),
      { numRuns: 40 },
    );
  });

  it('a then getter that throws fails that child with the getter error, and the supervisor keeps starting children', async () => {
    const sup = new TaskSupervisor('orm');
    const events: SupervisorEvent[] = [];
    sup.events.subscribe((event) => events.push(event));
    const getterError = new Error('then getter');
    sup.startChild(() => trappedProxy(getterError), { name: 'proxy' });
    sup.startChild(() => 'after', { name: 'after' });
    await tick();
    await tick();
    expect(events.filter((e) => e.type !== 'started').map((e) => [e.name, e.type])).toEqual([
      ['proxy', 'failed'],
      ['after', 'completed'],
    ]);
    expect(events.find((e) => e.type === 'failed')!.error).toBe(getterError);
    expect(sup.children()).toEqual([]);
    // a burst after it starts too (the flush is not stuck "scheduled")
    const later = Array.from({ length: 5 }, () => sup.startChild(() => 1));
    await tick();
    expect(sup.children().filter((c) => later.some((ref) => ref.id === c.id))).toEqual([]);
  });

  it('logs a failure with a Symbol, a prototype-less object or a throwing toString as a readable message', async () => {
    const sup = new TaskSupervisor('log');
    const throwing = {
      toString() {
        throw new Error('nope');
      },
    };
    for (const value of [Symbol('sym'), Object.create(null), throwing]) {
      sup.startChild(() => {
        throw value;
      });
    }
    await tick();
    expect(errorLog).toHaveBeenCalledTimes(3);
    const messages = errorLog.mock.calls.map((call) => call[0] as string);
    expect(messages[0]).toContain('Symbol(sym)');
    expect(messages[1]).toContain('an object');
    expect(messages[2]).toContain('an object');
  });
});

describe('TaskSupervisor.terminateChild: only the exact id', () => {
  it.each(['hostile-01', 'hostile-1.0', 'hostile-1e0', 'hostile- 1', 'hostile-1 ', 'hostile-0x1', 'hostile-+1'])(
    '%s does not terminate hostile-1',
    async (id) => {
      const sup = new TaskSupervisor('hostile');
      const ref = sup.startChild((ctx) => new Promise((resolve) => ctx.signal.addEventListener('abort', resolve)));
      expect(ref.id).toBe('hostile-1');
      await tick();
      await expect(sup.terminateChild(id)).resolves.toBe(false);
      expect(sup.children().map((c) => c.id)).toEqual(['hostile-1']);
      await expect(sup.terminateChild('hostile-1')).resolves.toBe(true);
      expect(sup.children()).toEqual([]);
    },
  );

  it('does not match a queued child by a look-alike id either', async () => {
    const sup = new TaskSupervisor('q');
    const ref = sup.startChild(() => new Promise(() => {}));
    expect(sup.children()).toMatchObject([{ id: ref.id, status: 'starting' }]);
    await expect(sup.terminateChild('q-01')).resolves.toBe(false);
    expect(sup.children()).toMatchObject([{ id: ref.id, status: 'running' }]);
  });
});
