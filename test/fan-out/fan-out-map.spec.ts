import { setTimeout as sleep } from 'node:timers/promises';
import { FanOut, type ItemContext, TaskAbortedError, TaskTimeoutError } from 'nestjs-concurrency';
import { deferred, flush, gauge, untilAborted } from './helpers.js';

const fanOut = new FanOut();

describe('FanOut.map', () => {
  it('never runs more than `concurrency` items at once, and does reach that bound', async () => {
    const g = gauge();
    const out = await fanOut.map(
      Array.from({ length: 40 }, (_, i) => i),
      async (i) => {
        g.enter();
        await sleep(i % 3);
        g.leave();
        return i;
      },
      { concurrency: 4 },
    );
    expect(out).toHaveLength(40);
    expect(g.max).toBe(4);
  });

  it('keeps input order although items finish in reverse order', async () => {
    const gates = Array.from({ length: 5 }, () => deferred());
    const finished: number[] = [];
    const done = fanOut.map([0, 1, 2, 3, 4], async (i) => {
      await gates[i].promise;
      finished.push(i);
      return i * 10;
    });
    for (let i = 4; i >= 0; i--) {
      gates[i].resolve();
      await flush(1);
    }
    expect(await done).toEqual([0, 10, 20, 30, 40]);
    expect(finished).toEqual([4, 3, 2, 1, 0]);
  });

  it('concurrency: Infinity starts every item at once', async () => {
    const g = gauge();
    const gate = deferred();
    const done = fanOut.map(
      Array.from({ length: 100 }, (_, i) => i),
      async (i) => {
        g.enter();
        await gate.promise;
        g.leave();
        return i;
      },
      { concurrency: Infinity },
    );
    await flush();
    expect(g.running).toBe(100);
    gate.resolve();
    expect(await done).toHaveLength(100);
  });

  it('takes sync results, generators, Sets and async iterables', async () => {
    async function* letters() {
      yield 'a';
      await sleep(1);
      yield 'b';
      yield 'c';
    }
    function* numbers() {
      yield* [1, 2, 3];
    }
    expect(await fanOut.map(letters(), (s) => s.toUpperCase(), { concurrency: 2 })).toEqual(['A', 'B', 'C']);
    expect(await fanOut.map(numbers(), (n) => n + 1)).toEqual([2, 3, 4]);
    expect(await fanOut.map(new Set([5, 6]), async (n) => n * 2)).toEqual([10, 12]);
    expect(await fanOut.map([], (n: number) => n)).toEqual([]);
  });

  it('pulls an async iterable only while a slot is free', async () => {
    let pulled = 0;
    const g = gauge();
    async function* source() {
      for (let i = 0; i < 20; i++) {
        pulled++;
        yield i;
      }
    }
    const gates = Array.from({ length: 20 }, () => deferred());
    const done = fanOut.map(
      source(),
      async (i) => {
        g.enter();
        await gates[i].promise;
        g.leave();
        return i;
      },
      { concurrency: 3 },
    );
    await flush();
    expect(pulled).toBe(3);
    gates[0].resolve();
    await flush();
    expect(pulled).toBe(4);
    gates.forEach((gate) => gate.resolve());
    expect(await done).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(g.max).toBe(3);
  });

  it('fails fast: rejects with the first error, aborts the items in flight and starts nothing new', async () => {
    const started: number[] = [];
    const signals: AbortSignal[] = [];
    const boom = new Error('boom');
    const gates = Array.from({ length: 10 }, () => deferred());
    const done = fanOut.map(
      Array.from({ length: 10 }, (_, i) => i),
      async (i, ctx) => {
        started.push(i);
        signals[i] = ctx.signal;
        await gates[i].promise;
        if (i === 1) throw boom;
        return i;
      },
      { concurrency: 3 },
    );
    await flush();
    expect(started).toEqual([0, 1, 2]);
    gates[1].resolve();
    await expect(done).rejects.toBe(boom);
    expect(signals[0].aborted).toBe(true);
    expect(signals[0].reason).toBeInstanceOf(TaskAbortedError);
    expect(signals[2].aborted).toBe(true);
    expect(signals[1].aborted).toBe(false);
    gates.forEach((gate) => gate.resolve());
    await flush();
    expect(started).toEqual([0, 1, 2]);
  });

  it('fails fast on an async input too: closes it (its finally runs) and pulls nothing more', async () => {
    let pulled = 0;
    let closed = false;
    async function* source() {
      try {
        for (let i = 0; ; i++) {
          pulled++;
          yield i;
        }
      } finally {
        closed = true;
      }
    }
    const boom = new Error('boom');
    const gates = Array.from({ length: 3 }, () => deferred());
    const done = fanOut.map(
      source(),
      async (i) => {
        await gates[i].promise;
        if (i === 1) throw boom;
        return i;
      },
      { concurrency: 2 },
    );
    await flush();
    expect(pulled).toBe(2);
    gates[1].resolve();
    await expect(done).rejects.toBe(boom);
    await flush();
    expect(closed).toBe(true);
    expect(pulled).toBe(2);
  });

  it('a thenable that calls back twice settles its item once: the bound holds', async () => {
    const g = gauge();
    const gates = Array.from({ length: 4 }, () => deferred());
    const done = fanOut.map(
      [0, 1, 2, 3],
      (i) => {
        if (i === 0) {
          // oxlint-disable-next-line unicorn/no-thenable -- a foreign thenable that breaks the contract, on purpose
          return { then: (resolve: (v: number) => void) => (resolve(0), resolve(0)) } as unknown as Promise<number>;
        }
        g.enter();
        return gates[i].promise.then(() => (g.leave(), i));
      },
      { concurrency: 1 },
    );
    await flush();
    expect(g.running).toBe(1);
    for (const gate of gates) {
      gate.resolve();
      await flush(1);
      expect(g.running).toBeLessThanOrEqual(1);
    }
    expect(await done).toEqual([0, 1, 2, 3]);
    expect(g.max).toBe(1);
  });

  it('rejects when the input sequence throws, and aborts the items in flight', async () => {
    const signals: AbortSignal[] = [];
    function* source() {
      yield 1;
      throw new Error('bad input');
    }
    await expect(
      fanOut.map(source(), (n, ctx) => {
        signals.push(ctx.signal);
        return untilAborted(ctx.signal);
      }),
    ).rejects.toThrow('bad input');
    expect(signals[0].aborted).toBe(true);
  });

  it('hands every item its index, a task id and attempt 1', async () => {
    const contexts = await fanOut.map(['x', 'y'], (_, ctx: ItemContext) => ({
      index: ctx.index,
      id: ctx.id,
      attempt: ctx.attempt,
    }));
    expect(contexts.map((c) => c.index)).toEqual([0, 1]);
    expect(contexts[0].id).toMatch(/^map-\d+:0$/);
    expect(contexts[0].attempt).toBe(1);
  });

  describe('timeouts (fake timers)', () => {
    beforeEach(() => vi.useFakeTimers());
    afterEach(() => vi.useRealTimers());

    it("onTimeout 'throw' (the default): rejects with TaskTimeoutError and aborts the item's signal", async () => {
      let signal!: AbortSignal;
      const done = fanOut.map(
        [1, 2],
        async (n, ctx) => {
          if (n === 2) return n;
          signal = ctx.signal;
          return untilAborted(ctx.signal);
        },
        { timeout: 100 },
      );
      const outcome = expect(done).rejects.toBeInstanceOf(TaskTimeoutError);
      await vi.advanceTimersByTimeAsync(99);
      expect(signal.aborted).toBe(false);
      await vi.advanceTimersByTimeAsync(50);
      await outcome;
      expect(signal.aborted).toBe(true);
      expect(signal.reason).toBeInstanceOf(TaskTimeoutError);
    });

    it("onTimeout 'skip': the timed-out item's result is undefined, the others arrive, its slot frees up", async () => {
      let signal!: AbortSignal;
      const done = fanOut.map(
        [1, 2, 3],
        async (n, ctx) => {
          if (n !== 1) return n;
          signal = ctx.signal;
          return new Promise<number>(() => {});
        },
        { timeout: 100, onTimeout: 'skip', concurrency: 1 },
      );
      await vi.advanceTimersByTimeAsync(150);
      expect(await done).toEqual([undefined, 2, 3]);
      expect(signal.reason).toBeInstanceOf(TaskTimeoutError);
    });

    it("onTimeout 'throw' aborts the siblings still running with TaskAbortedError", async () => {
      const signals: AbortSignal[] = [];
      const done = fanOut.map(
        [0, 1, 2],
        (i, ctx) => {
          signals[i] = ctx.signal;
          if (i === 1) return new Promise<number>((resolve) => setTimeout(resolve, 50, i)); // frees its slot: item 2 starts around 50 ms
          return untilAborted(ctx.signal);
        },
        { concurrency: 2, timeout: 100 },
      );
      const rejected = expect(done).rejects.toBeInstanceOf(TaskTimeoutError);
      await vi.advanceTimersByTimeAsync(60);
      expect(signals[2].aborted).toBe(false);
      await vi.advanceTimersByTimeAsync(70); // item 0 times out (100 ms + at most 2/16), item 2 has run ~70 ms
      await rejected;
      expect(signals[0].reason).toBeInstanceOf(TaskTimeoutError);
      expect(signals[2].reason).toBeInstanceOf(TaskAbortedError);
    });

    it('timeout: Infinity never times out', async () => {
      const gate = deferred<string>();
      const done = fanOut.map(['a'], () => gate.promise, { timeout: Infinity });
      await vi.advanceTimersByTimeAsync(60_000);
      gate.resolve('late');
      expect(await done).toEqual(['late']);
    });
  });

  it("a parent signal aborts every item's signal with its reason and the call rejects with it", async () => {
    const parent = new AbortController();
    const signals: AbortSignal[] = [];
    const done = fanOut.map(
      [1, 2, 3, 4, 5],
      (_, ctx) => {
        signals.push(ctx.signal);
        return untilAborted(ctx.signal);
      },
      { signal: parent.signal, concurrency: 3 },
    );
    await flush();
    const reason = new Error('client went away');
    parent.abort(reason);
    await expect(done).rejects.toBe(reason);
    expect(signals).toHaveLength(3);
    for (const signal of signals) expect(signal.reason).toBe(reason);
  });

  it('a fn that aborts the parent signal and then returns: the call rejects with the reason, the value is dropped', async () => {
    const parent = new AbortController();
    const reason = new Error('cancelled by the item');
    await expect(
      fanOut.settle(
        [0, 1],
        (i) => {
          if (i === 0) parent.abort(reason);
          return i;
        },
        { signal: parent.signal },
      ),
    ).rejects.toBe(reason);
    const streamParent = new AbortController();
    const stream = fanOut.stream(
      [0, 1],
      (i) => {
        if (i === 0) streamParent.abort(reason);
        return i;
      },
      { signal: streamParent.signal },
    );
    const it = stream[Symbol.asyncIterator]();
    await expect(it.next()).rejects.toBe(reason);
    expect(await it.next()).toEqual({ value: undefined, done: true });
  });

  it('an already aborted parent signal runs nothing', async () => {
    const fn = vi.fn();
    await expect(fanOut.map([1], fn, { signal: AbortSignal.abort('stop') })).rejects.toBe('stop');
    expect(fn).not.toHaveBeenCalled();
  });

  describe('invalid options throw before any item runs, naming the option', () => {
    it.each<[string, unknown[], ErrorConstructor, RegExp]>([
      ['concurrency: 0', [[1], { concurrency: 0 }], RangeError, /"concurrency".*>= 1/],
      ['concurrency: 1.5', [[1], { concurrency: 1.5 }], RangeError, /"concurrency"/],
      ['concurrency: "4"', [[1], { concurrency: '4' }], TypeError, /"concurrency"/],
      ['a negative timeout', [[1], { timeout: -1 }], RangeError, /"timeout".*got -1/],
      ['timeout: NaN', [[1], { timeout: Number.NaN }], TypeError, /"timeout"/],
      ['a bad onTimeout', [[1], { onTimeout: 'ignore' }], TypeError, /"onTimeout".*'throw' or 'skip'/],
      ['ordered: "yes"', [[1], { ordered: 'yes' }], TypeError, /"ordered"/],
      ['a signal that is not an AbortSignal', [[1], { signal: {} }], TypeError, /"signal"/],
      ['inputs that are not iterable', [42, {}], TypeError, /"inputs"/],
    ])('%s', (_, [inputs, opts], type, message) => {
      const fn = vi.fn();
      const call = () => fanOut.map(inputs as number[], fn, opts as object);
      expect(call).toThrow(type);
      expect(call).toThrow(message);
      expect(fn).not.toHaveBeenCalled();
    });

    it('a fn that is not a function', () => {
      expect(() => fanOut.map([1], 'nope' as never)).toThrow(TypeError);
      expect(() => fanOut.settle([1], undefined as never)).toThrow(/"fn": expected a function/);
      expect(() => fanOut.stream([1], 42 as never)).toThrow(/FanOut.stream\(\).*"fn"/);
    });
  });
});
