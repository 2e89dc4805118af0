import { setTimeout as sleep } from 'node:timers/promises';
import { FanOut, type Outcome, TaskAbortedError, TaskTimeoutError } from 'nestjs-concurrency';
import { lastValueFrom, take, toArray } from 'rxjs';
import { deferred, flush, gauge, untilAborted } from './helpers.js';

const fanOut = new FanOut();

function* endless(counter: { pulled: number; closed: boolean }) {
  try {
    for (let i = 0; ; i++) {
      counter.pulled++;
      yield i;
    }
  } finally {
    counter.closed = true;
  }
}

describe('FanOut.stream', () => {
  it('is lazy over an endless generator: pulls only as slots free up', async () => {
    const counter = { pulled: 0, closed: false };
    const stream = fanOut.stream(endless(counter), async (i) => i * 2, { concurrency: 4 });
    await flush();
    expect(counter.pulled).toBe(0);
    const seen: number[] = [];
    for await (const outcome of stream) {
      seen.push(outcome.status === 'fulfilled' ? outcome.value : -1);
      expect(counter.pulled).toBeLessThanOrEqual(seen.length + 4);
      if (seen.length === 10) break;
    }
    expect(seen).toEqual([0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
    expect(counter.pulled).toBeLessThanOrEqual(14);
    expect(counter.closed).toBe(true);
  });

  it('does not run ahead of a consumer that stops reading', async () => {
    const counter = { pulled: 0, closed: false };
    const nextTurn = (i: number) => new Promise<number>((resolve) => setImmediate(resolve, i));
    const iterator = fanOut.stream(endless(counter), nextTurn, { concurrency: 3 })[Symbol.asyncIterator]();
    await iterator.next();
    await flush(20);
    expect(counter.pulled).toBeLessThanOrEqual(4);
    await iterator.return?.();
  });

  it('ordered: a slow head item holds the others back without pulling more than `concurrency` ahead', async () => {
    const counter = { pulled: 0, closed: false };
    const head = deferred<string>();
    const iterator = fanOut
      .stream(endless(counter), async (i) => (i === 0 ? head.promise : String(i)), { concurrency: 3 })
      [Symbol.asyncIterator]();
    const first = iterator.next();
    await flush(20);
    expect(counter.pulled).toBe(3);
    head.resolve('zero');
    expect((await first).value).toMatchObject({ value: 'zero', index: 0 });
    expect((await iterator.next()).value).toMatchObject({ value: '1', index: 1 });
    await iterator.return?.();
  });

  it('never runs more than `concurrency` items and reaches the bound', async () => {
    const g = gauge();
    let count = 0;
    for await (const _ of fanOut.stream(
      Array.from({ length: 30 }, (_, i) => i),
      async (i) => {
        g.enter();
        await sleep(i % 3);
        g.leave();
      },
      { concurrency: 5 },
    )) {
      count++;
    }
    expect(count).toBe(30);
    expect(g.max).toBe(5);
  });

  it('break aborts the items in flight and closes the input', async () => {
    const counter = { pulled: 0, closed: false };
    const signals: AbortSignal[] = [];
    for await (const _ of fanOut.stream(
      endless(counter),
      (i, ctx) => {
        signals.push(ctx.signal);
        return i === 0 ? 0 : untilAborted(ctx.signal);
      },
      { concurrency: 3 },
    )) {
      break;
    }
    expect(counter.closed).toBe(true);
    expect(signals.length).toBeGreaterThanOrEqual(3);
    const inFlight = signals.slice(1);
    for (const signal of inFlight) {
      expect(signal.aborted).toBe(true);
      expect(signal.reason).toBeInstanceOf(TaskAbortedError);
    }
    const pulled = counter.pulled;
    await flush();
    expect(counter.pulled).toBe(pulled);
  });

  it('throwing out of for await aborts the items in flight too', async () => {
    const signals: AbortSignal[] = [];
    const loop = async () => {
      for await (const _ of fanOut.stream(
        [0, 1, 2],
        (i, ctx) => {
          signals.push(ctx.signal);
          return i === 0 ? 0 : untilAborted(ctx.signal);
        },
        { concurrency: 3 },
      )) {
        throw new Error('consumer failed');
      }
    };
    await expect(loop()).rejects.toThrow('consumer failed');
    expect(signals.slice(1).every((s) => s.aborted)).toBe(true);
  });

  it('ordered: false yields outcomes in completion order; ordered (default) in input order', async () => {
    const run = async (ordered: boolean) => {
      const gates = [deferred(), deferred(), deferred()];
      const seen: number[] = [];
      const consumer = (async () => {
        for await (const o of fanOut.stream(
          [0, 1, 2],
          async (i) => {
            await gates[i].promise;
            return i;
          },
          { ordered },
        )) {
          seen.push(o.index);
        }
      })();
      for (const i of [2, 0, 1]) {
        await flush();
        gates[i].resolve();
      }
      await consumer;
      return seen;
    };
    expect(await run(false)).toEqual([2, 0, 1]);
    expect(await run(true)).toEqual([0, 1, 2]);
  });

  it('ordered with concurrency above 4096 (held outcomes in a Map, not the ring): input order, nothing lost', async () => {
    const n = 5000;
    const gates = Array.from({ length: n }, () => deferred());
    const seen: number[] = [];
    const consuming = (async () => {
      for await (const o of fanOut.stream(
        Array.from({ length: n }, (_, i) => i),
        async (i) => {
          await gates[i].promise;
          return i;
        },
        { concurrency: n, timeout: Infinity },
      )) {
        seen.push(o.index);
      }
    })();
    await flush(1);
    for (let i = n - 1; i >= 0; i--) gates[i].resolve();
    await consuming;
    expect(seen).toEqual(Array.from({ length: n }, (_, i) => i));
  });

  it('reports failures as outcomes and keeps going', async () => {
    const outcomes: Outcome<number, number>[] = [];
    for await (const o of fanOut.stream([1, 2, 3], async (n) => {
      if (n === 2) throw new Error('two');
      return n;
    })) {
      outcomes.push(o);
    }
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
  });

  it('accepts an async iterable input', async () => {
    async function* source() {
      for (let i = 0; i < 5; i++) {
        await sleep(1);
        yield i;
      }
    }
    const values: number[] = [];
    for await (const o of fanOut.stream(source(), async (i) => i + 100, { concurrency: 2 })) {
      if (o.status === 'fulfilled') values.push(o.value);
    }
    expect(values).toEqual([100, 101, 102, 103, 104]);
  });

  it('each iteration is a fresh run of the same inputs', async () => {
    const stream = fanOut.stream([1, 2], (n) => n);
    const collect = async () => {
      const out: number[] = [];
      for await (const o of stream) if (o.status === 'fulfilled') out.push(o.value);
      return out;
    };
    expect(await collect()).toEqual([1, 2]);
    expect(await collect()).toEqual([1, 2]);
  });

  it('a parent signal aborts the items and the iteration rejects with signal.reason', async () => {
    const parent = new AbortController();
    const signals: AbortSignal[] = [];
    const loop = (async () => {
      for await (const _ of fanOut.stream(
        [1, 2],
        (_, ctx) => {
          signals.push(ctx.signal);
          return untilAborted(ctx.signal);
        },
        { signal: parent.signal },
      )) {
        // nothing arrives
      }
    })();
    await flush();
    parent.abort('shutdown requested');
    await expect(loop).rejects.toBe('shutdown requested');
    expect(signals.map((s) => s.reason)).toEqual(['shutdown requested', 'shutdown requested']);
  });

  describe('timeouts (fake timers)', () => {
    beforeEach(() => vi.useFakeTimers());
    afterEach(() => vi.useRealTimers());

    it("skips a timed-out item by default (a TaskTimeoutError outcome) and aborts the item's signal", async () => {
      let signal!: AbortSignal;
      const outcomes: Outcome<number, number>[] = [];
      const loop = (async () => {
        for await (const o of fanOut.stream(
          [0, 1],
          (i, ctx) => {
            if (i === 1) return 1;
            signal = ctx.signal;
            return untilAborted(ctx.signal);
          },
          { timeout: 100 },
        ))
          outcomes.push(o);
      })();
      await vi.advanceTimersByTimeAsync(150);
      await loop;
      expect(outcomes[0].status).toBe('rejected');
      expect((outcomes[0] as { reason: unknown }).reason).toBeInstanceOf(TaskTimeoutError);
      expect(signal.reason).toBeInstanceOf(TaskTimeoutError);
      expect(outcomes[1]).toMatchObject({ status: 'fulfilled', value: 1 });
    });

    it("onTimeout 'throw' makes the iteration reject with TaskTimeoutError", async () => {
      const loop = (async () => {
        for await (const _ of fanOut.stream([0], () => new Promise(() => {}), { timeout: 100, onTimeout: 'throw' })) {
          // nothing arrives
        }
      })();
      const rejected = expect(loop).rejects.toBeInstanceOf(TaskTimeoutError);
      await vi.advanceTimersByTimeAsync(150);
      await rejected;
    });
  });
});

describe('FanOut.stream$ (rxjs)', () => {
  it('emits the same outcomes and completes', async () => {
    const outcomes = await lastValueFrom(fanOut.stream$([1, 2, 3], async (n) => n * n).pipe(toArray()));
    expect(outcomes.map((o) => (o.status === 'fulfilled' ? o.value : null))).toEqual([1, 4, 9]);
  });

  it('unsubscribing (take) aborts the items in flight and closes the input', async () => {
    const counter = { pulled: 0, closed: false };
    const signals: AbortSignal[] = [];
    const first = await lastValueFrom(
      fanOut
        .stream$(
          endless(counter),
          (i, ctx) => {
            signals.push(ctx.signal);
            return i === 0 ? 'first' : untilAborted(ctx.signal);
          },
          { concurrency: 2 },
        )
        .pipe(take(1)),
    );
    expect(first).toMatchObject({ value: 'first' });
    await flush();
    expect(counter.closed).toBe(true);
    expect(signals.slice(1).every((s) => s.aborted)).toBe(true);
  });

  it('errors for the call, e.g. a parent signal', async () => {
    await expect(
      lastValueFrom(fanOut.stream$([1], (n) => n, { signal: AbortSignal.abort(new Error('gone')) })),
    ).rejects.toThrow('gone');
  });
});
