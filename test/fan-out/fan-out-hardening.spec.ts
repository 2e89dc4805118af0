import { Logger } from '@nestjs/common';
import fc from 'fast-check';
import { FanOut, TaskSupervisor } from 'nestjs-concurrency';
import v8 from 'node:v8';
import vm from 'node:vm';
import { ending, expected, perform, processFaults } from '../utils/hostile-values.js';
import { flush } from './helpers.js';

const fanOut = new FanOut();

function collectGarbage(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

describe('FanOut: memory stays flat', () => {
  it('an unordered stream whose consumer always lags keeps its outcome queue bounded', async () => {
    const gc = collectGarbage();
    const total = 1_500_000;
    // Items settle a microtask after they start; the consumer yields a few microtasks per outcome, so finished
    // outcomes are always waiting when it asks: the queue of outcomes never empties.
    const iterator = fanOut
      .stream(
        { length: total, [Symbol.iterator]: Array.prototype[Symbol.iterator] } as unknown as Iterable<number>,
        (_: unknown, ctx) => Promise.resolve(ctx.index),
        { concurrency: 16, ordered: false, timeout: Infinity },
      )
      [Symbol.asyncIterator]();
    let seen = 0;
    let before = 0;
    let grownAt = 0;
    for (;;) {
      const step = await iterator.next();
      if (step.done) break;
      seen++;
      await Promise.resolve();
      await Promise.resolve();
      if (seen === 50_000) {
        gc();
        before = process.memoryUsage().heapUsed;
      }
      if (seen === total - 1000) {
        gc();
        grownAt = process.memoryUsage().heapUsed - before;
      }
    }
    expect(seen).toBe(total);
    // Before the fix the consumed head of the queue stayed in the array: ~8 bytes per outcome, >= 11 MB here.
    expect(grownAt).toBeLessThan(4 * 1024 * 1024);
  });

  it('polling yieldMany on running tasks keeps nothing behind per poll', async () => {
    const gc = collectGarbage();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const sup = new TaskSupervisor('poll');
      const tasks = Array.from({ length: 100 }, () => sup.async(() => new Promise<never>(() => {})));
      await vi.advanceTimersByTimeAsync(0);
      const poll = async (n: number) => {
        for (let i = 0; i < n; i++) {
          const pending = fanOut.yieldMany(tasks, 1);
          vi.advanceTimersByTime(1);
          expect((await pending).every((outcome) => outcome === null)).toBe(true);
        }
      };
      await poll(200); // warm up
      gc();
      const before = process.memoryUsage().heapUsed;
      await poll(3000);
      gc();
      const grown = process.memoryUsage().heapUsed - before;
      // Promise.all over settled() kept a reaction per task per poll: ~39 MB for 3,000 polls of 100 tasks.
      expect(grown).toBeLessThan(4 * 1024 * 1024);
      for (const task of tasks) task.abort();
    } finally {
      vi.useRealTimers();
    }
  });

  it('awaitMany that times out leaves no waiter on the tasks it gave up on', async () => {
    const gc = collectGarbage();
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const sup = new TaskSupervisor('await');
      // Tasks that ignore their abort signal keep running after awaitMany gives up on them.
      const tasks = Array.from({ length: 100 }, () => sup.async(() => new Promise<never>(() => {})));
      await vi.advanceTimersByTimeAsync(0);
      const attempt = async (n: number) => {
        for (let i = 0; i < n; i++) {
          const pending = fanOut.awaitMany(tasks, 1).catch((error: unknown) => error);
          vi.advanceTimersByTime(1);
          expect(await pending).toBeInstanceOf(Error);
        }
      };
      await attempt(200);
      gc();
      const before = process.memoryUsage().heapUsed;
      await attempt(3000);
      gc();
      expect(process.memoryUsage().heapUsed - before).toBeLessThan(4 * 1024 * 1024);
    } finally {
      vi.useRealTimers();
    }
  });

  it('awaitMany that fails at once on a task already failed attaches nothing to the tasks listed after it', async () => {
    const gc = collectGarbage();
    const sup = new TaskSupervisor('failed-first');
    const failed = sup.async(() => {
      throw new Error('already failed');
    });
    // Tasks that ignore their abort signal keep running after each call has given up on them.
    const stuck = Array.from({ length: 50 }, () => sup.async(() => new Promise<never>(() => {})));
    await failed.yield(1000);
    const attempt = async (n: number) => {
      for (let i = 0; i < n; i++) await expect(fanOut.awaitMany([failed, ...stuck], 60_000)).rejects.toThrow();
    };
    await attempt(100);
    gc();
    const before = process.memoryUsage().heapUsed;
    await attempt(2000);
    gc();
    // A waiter per stuck task per call (100,000 here) stayed attached before the fix.
    expect(process.memoryUsage().heapUsed - before).toBeLessThan(4 * 1024 * 1024);
  });

  it('yieldMany still reports what settled before the deadline, and the same task listed twice', async () => {
    const sup = new TaskSupervisor('mixed');
    const fast = sup.async(() => 'fast');
    const slow = sup.async(() => new Promise<never>(() => {}));
    const failing = sup.async(() => {
      throw Object.create(null);
    });
    const outcomes = await fanOut.yieldMany([fast, slow, failing, fast], 50);
    expect(outcomes[0]).toEqual({ status: 'fulfilled', value: 'fast' });
    expect(outcomes[1]).toBeNull();
    expect(outcomes[2]!.status).toBe('rejected');
    expect(outcomes[3]).toEqual({ status: 'fulfilled', value: 'fast' });
    slow.abort();
  });
});

describe('FanOut: an input whose iterator misbehaves', () => {
  const cursor = (results: unknown[]): AsyncIterable<number> => ({
    [Symbol.asyncIterator]: () => ({ next: async () => results.shift() as IteratorResult<number> }),
  });
  const syncCursor = (results: unknown[]): Iterable<number> => ({
    [Symbol.iterator]: () => ({ next: () => results.shift() as IteratorResult<number> }),
  });

  for (const bad of [undefined, null, 42, 'done']) {
    it(`an async next() resolving to ${String(bad)} rejects the call with a TypeError, as for await does`, async () => {
      const faults = await processFaults(async () => {
        await expect(fanOut.map(cursor([{ value: 1, done: false }, bad]), (x: number) => x * 2)).rejects.toBeInstanceOf(
          TypeError,
        );
        await expect(fanOut.settle(cursor([bad]), (x: number) => x)).rejects.toThrow(/not an object/);
      });
      expect(faults).toEqual([]);
    });

    it(`a sync next() returning ${String(bad)} rejects the call once, with no second unhandled rejection`, async () => {
      const faults = await processFaults(async () => {
        await expect(
          fanOut.map(syncCursor([{ value: 1, done: false }, bad]), async (x: number) => x * 2),
        ).rejects.toBeInstanceOf(TypeError);
        // Items still running when the pull failed settle later: they must not pull again.
        await flush();
      });
      expect(faults).toEqual([]);
    });
  }

  it('a stream over such a cursor ends with the error, and the supervisor-less FanOut shuts down at once', async () => {
    const own = new FanOut();
    const faults = await processFaults(async () => {
      const seen: number[] = [];
      const consume = async () => {
        for await (const outcome of own.stream(cursor([{ value: 7, done: false }, undefined]), (x: number) => x)) {
          if (outcome.status === 'fulfilled') seen.push(outcome.value);
        }
      };
      await expect(consume()).rejects.toBeInstanceOf(TypeError);
      expect(seen.length).toBeLessThanOrEqual(1);
      const started = Date.now();
      await own.onApplicationShutdown();
      // The call settled: shutdown does not wait for it (it would wait the whole shutdownTimeout, 5 s).
      expect(Date.now() - started).toBeLessThan(2000);
    });
    expect(faults).toEqual([]);
  });

  it('a done/value getter that throws fails the call with that error', async () => {
    const boom = new Error('getter');
    const step = Object.defineProperty({}, 'done', {
      get() {
        throw boom;
      },
    });
    await expect(fanOut.map(cursor([step]), (x: number) => x)).rejects.toBe(boom);
    await expect(fanOut.map(syncCursor([step]), (x: number) => x)).rejects.toBe(boom);
  });
});

describe('FanOut: hostile item values (property-based)', () => {
  beforeEach(() => void vi.spyOn(Logger.prototype, 'error').mockImplementation(() => {}));
  afterEach(() => vi.restoreAllMocks());

  it('settle() gives each item exactly its thrown/returned value; map() rejects with the first failure', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(ending(), { minLength: 1, maxLength: 10 }), async (endings) => {
        const faults = await processFaults(async () => {
          const outcomes = await fanOut.settle(endings, (e) => perform(e), { concurrency: 3 });
          for (const [i, outcome] of outcomes.entries()) {
            const want = expected(endings[i]);
            expect(outcome.status).toBe(want.failed ? 'rejected' : 'fulfilled');
            const got = outcome.status === 'rejected' ? outcome.reason : outcome.value;
            expect(Object.is(got, want.value)).toBe(true);
          }
          const anyFails = endings.some((e) => expected(e).failed);
          const mapped = await fanOut
            .map(endings, (e) => perform(e))
            .then(
              () => 'resolved',
              () => 'rejected',
            );
          expect(mapped).toBe(anyFails ? 'rejected' : 'resolved');
          // Tasks awaited as a group behave the same.
          const tasks = endings.map((e) => fanOut.async(() => perform(e)));
          const all = await fanOut.awaitMany(tasks, 5000).then(
            () => 'resolved',
            () => 'rejected',
          );
          expect(all).toBe(anyFails ? 'rejected' : 'resolved');
        });
        expect(faults).toEqual([]);
      }),
      { numRuns: 50 },
    );
  });
});
