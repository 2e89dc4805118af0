import { FanOut, TaskTimeoutError } from 'nestjs-concurrency';
import { deferred, untilAborted } from './helpers.js';

const fanOut = new FanOut();

describe('FanOut.settle', () => {
  it('never rejects for an item: one outcome per input, in input order, with input and index', async () => {
    const oops = new Error('oops');
    const outcomes = await fanOut.settle(['a', 'b', 'c'], async (s) => {
      if (s === 'b') throw oops;
      return s.toUpperCase();
    });
    expect(outcomes).toEqual([
      { status: 'fulfilled', value: 'A', input: 'a', index: 0 },
      { status: 'rejected', reason: oops, input: 'b', index: 1 },
      { status: 'fulfilled', value: 'C', input: 'c', index: 2 },
    ]);
  });

  it('turns a synchronous throw into a rejected outcome', async () => {
    const [outcome] = await fanOut.settle([1], () => {
      throw new Error('sync');
    });
    expect(outcome).toMatchObject({ status: 'rejected', input: 1, index: 0 });
  });

  describe('timeouts (fake timers)', () => {
    beforeEach(() => vi.useFakeTimers());
    afterEach(() => vi.useRealTimers());

    it("onTimeout 'skip' (the default): a rejected outcome with TaskTimeoutError, the item's signal aborted", async () => {
      let signal!: AbortSignal;
      const done = fanOut.settle(
        ['slow', 'fast'],
        async (s, ctx) => {
          if (s === 'fast') return s;
          signal = ctx.signal;
          return untilAborted(ctx.signal);
        },
        { timeout: 200 },
      );
      await vi.advanceTimersByTimeAsync(199);
      expect(signal.aborted).toBe(false);
      await vi.advanceTimersByTimeAsync(100);
      const [slow, fast] = await done;
      expect(slow).toMatchObject({ status: 'rejected', input: 'slow', index: 0 });
      expect((slow as { reason: unknown }).reason).toBeInstanceOf(TaskTimeoutError);
      expect(signal.reason).toBe((slow as { reason: unknown }).reason);
      expect(fast).toEqual({ status: 'fulfilled', value: 'fast', input: 'fast', index: 1 });
    });

    it("onTimeout 'throw': the whole call rejects with TaskTimeoutError", async () => {
      let signal!: AbortSignal;
      const done = fanOut.settle(
        [1],
        (_, ctx) => {
          signal = ctx.signal;
          return new Promise(() => {});
        },
        { timeout: 50, onTimeout: 'throw' },
      );
      const rejected = expect(done).rejects.toBeInstanceOf(TaskTimeoutError);
      await vi.advanceTimersByTimeAsync(100);
      await rejected;
      expect(signal.reason).toBeInstanceOf(TaskTimeoutError);
    });

    it('a late result of a timed-out item is ignored and its slot was freed at the deadline', async () => {
      const first = deferred<string>();
      const second = deferred<string>();
      const started: number[] = [];
      const done = fanOut.settle(
        [0, 1, 2],
        (i) => {
          started.push(i);
          return i === 0 ? first.promise : i === 1 ? second.promise : 'third';
        },
        { timeout: 100, concurrency: 1 },
      );
      await vi.advanceTimersByTimeAsync(50);
      expect(started).toEqual([0]);
      await vi.advanceTimersByTimeAsync(100);
      expect(started).toEqual([0, 1]);
      first.resolve('too late');
      await vi.advanceTimersByTimeAsync(0);
      expect(started).toEqual([0, 1]);
      second.resolve('second');
      const outcomes = await done;
      expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'fulfilled', 'fulfilled']);
      expect(outcomes[1]).toMatchObject({ value: 'second' });
    });
  });

  it('a parent signal rejects settle too', async () => {
    const parent = new AbortController();
    const done = fanOut.settle([1, 2], (_, ctx) => untilAborted(ctx.signal), { signal: parent.signal });
    parent.abort(new Error('cancelled'));
    await expect(done).rejects.toThrow('cancelled');
  });
});
