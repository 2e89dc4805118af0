import { Test } from '@nestjs/testing';
import {
  ConcurrencyModule,
  FanOut,
  type Outcome,
  SupervisorShutdownError,
  TaskAbortedError,
  TaskSupervisor,
  TaskTimeoutError,
} from 'nestjs-concurrency';
import { deferred, flush, gauge, untilAborted } from './helpers.js';

async function boot(options: Parameters<typeof ConcurrencyModule.forRoot>[0]) {
  const moduleRef = await Test.createTestingModule({ imports: [ConcurrencyModule.forRoot(options)] }).compile();
  const app = await moduleRef.createNestApplication({ logger: false }).init();
  return app;
}

describe('FanOut in ConcurrencyModule', () => {
  it('is injectable and takes concurrency and timeout defaults from forRoot({ fanOut })', async () => {
    vi.useFakeTimers();
    try {
      const app = await boot({ fanOut: { concurrency: 2, timeout: 300 } });
      const fanOut = app.get(FanOut);
      const g = gauge();
      const gates = Array.from({ length: 6 }, () => deferred());
      const done = fanOut.map([0, 1, 2, 3, 4, 5], async (i) => {
        g.enter();
        await gates[i].promise;
        g.leave();
        return i;
      });
      await vi.advanceTimersByTimeAsync(0);
      expect(g.running).toBe(2);
      const rejected = expect(done).rejects.toBeInstanceOf(TaskTimeoutError);
      await vi.advanceTimersByTimeAsync(400);
      await rejected;
      gates.forEach((gate) => gate.resolve());
      await app.close();
    } finally {
      vi.useRealTimers();
    }
  });

  it('a call can override the module defaults', async () => {
    const app = await boot({ fanOut: { concurrency: 1 } });
    const g = gauge();
    await app.get(FanOut).map(
      [1, 2, 3, 4],
      async () => {
        g.enter();
        await flush(1);
        g.leave();
      },
      { concurrency: 4 },
    );
    expect(g.max).toBe(4);
    await app.close();
  });

  it('on app.close() lets quick work finish, then aborts what still runs after shutdownTimeout', async () => {
    const app = await boot({ shutdownTimeout: 100 });
    const fanOut = app.get(FanOut);
    const quickGate = deferred<string>();
    const quick = fanOut.async(() => quickGate.promise);
    const stuck = fanOut.async((ctx) => untilAborted(ctx.signal));
    // quick work that would stop if aborted: it must finish on its own, with its signal untouched
    let quickItem!: AbortSignal;
    const quickRun = fanOut.map([1], (n, ctx) => {
      quickItem = ctx.signal;
      return Promise.race([quickGate.promise.then(() => n), untilAborted(ctx.signal)]);
    });
    const itemSignals: AbortSignal[] = [];
    const run = fanOut.map([1, 2], (_, ctx) => {
      itemSignals.push(ctx.signal);
      return untilAborted(ctx.signal);
    });
    const runRejected = expect(run).rejects.toBeInstanceOf(TaskAbortedError);
    await flush();
    const closing = app.close();
    await flush();
    expect(itemSignals.some((s) => s.aborted)).toBe(false); // draining, not aborting, before shutdownTimeout
    expect(stuck.signal.aborted).toBe(false);
    quickGate.resolve('finished during the drain');
    await closing;
    expect(quick.outcome).toEqual({ status: 'fulfilled', value: 'finished during the drain' });
    expect(quick.signal.aborted).toBe(false);
    expect(await quickRun).toEqual([1]);
    expect(quickItem.aborted).toBe(false);
    expect(stuck.signal.reason).toBeInstanceOf(TaskAbortedError);
    await runRejected;
    expect(itemSignals.every((s) => s.reason instanceof TaskAbortedError)).toBe(true);
  });

  it('waits for calls made during the drain too, instead of aborting them once the earlier ones end', async () => {
    const app = await boot({ shutdownTimeout: 10_000 });
    const fanOut = app.get(FanOut);
    const first = deferred();
    const second = deferred();
    void fanOut.map([1], () => first.promise);
    await flush();
    const closing = app.close();
    await flush();
    let lateSignal!: AbortSignal;
    const late = fanOut.map([2], (n, ctx) => {
      lateSignal = ctx.signal;
      return Promise.race([second.promise.then(() => n), untilAborted(ctx.signal)]);
    });
    first.resolve();
    await flush();
    expect(lateSignal.aborted).toBe(false);
    second.resolve();
    expect(await late).toEqual([2]);
    const started = Date.now();
    await closing;
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('lets supervised work that is still draining start fan-out calls, and runs them to the end', async () => {
    const app = await boot({ shutdownTimeout: 10_000 });
    const fanOut = app.get(FanOut);
    const supervisor = app.get(TaskSupervisor);
    const gate = deferred();
    let result: number[] | undefined;
    let signal: AbortSignal | undefined;
    supervisor.startChild(async () => {
      await gate.promise; // e.g. a query, before the child fans out
      result = await fanOut.map([1, 2], (n, ctx) => {
        signal = ctx.signal;
        return n * 10;
      });
    });
    await flush();
    const closing = app.close();
    await flush();
    gate.resolve();
    await closing;
    expect(result).toEqual([10, 20]);
    expect(signal?.aborted).toBe(false);
  });

  it('cancels a stream in flight after shutdownTimeout: the iteration rejects with TaskAbortedError', async () => {
    const app = await boot({ shutdownTimeout: 50 });
    const fanOut = app.get(FanOut);
    const signals: AbortSignal[] = [];
    const it = fanOut
      .stream([0, 1, 2], (i, ctx) => {
        signals.push(ctx.signal);
        return i === 0 ? i : untilAborted(ctx.signal);
      })
      [Symbol.asyncIterator]();
    expect(await it.next()).toMatchObject({ value: { status: 'fulfilled', value: 0 } as Outcome<number, number> });
    const next = it.next();
    const rejected = expect(next).rejects.toBeInstanceOf(TaskAbortedError);
    await app.close();
    await rejected;
    expect(signals.slice(1).every((s) => s.reason instanceof TaskAbortedError)).toBe(true);
  });

  it('an abandoned stream (an iterator nobody pulls) does not hold up shutdown', async () => {
    const app = await boot({ shutdownTimeout: 10_000 });
    const fanOut = app.get(FanOut);
    const iterator = fanOut.stream([1, 2], (n) => n)[Symbol.asyncIterator]();
    const started = Date.now();
    await app.close();
    expect(Date.now() - started).toBeLessThan(5_000);
    // it begins only now, after shutdown: cancelled at once
    await expect(iterator.next()).rejects.toBeInstanceOf(TaskAbortedError);
  });

  it('cancels calls made after shutdown at once, without running them', async () => {
    const app = await boot({});
    const fanOut = app.get(FanOut);
    await app.close();
    const fn = vi.fn((n: number) => n);
    await expect(fanOut.map([1], fn)).rejects.toBeInstanceOf(TaskAbortedError);
    await expect(fanOut.settle([1], fn)).rejects.toBeInstanceOf(TaskAbortedError);
    expect(fn).not.toHaveBeenCalled();
    expect(() => fanOut.async(() => 1)).toThrow(SupervisorShutdownError);
  });

  it("async() tasks are children of the 'default' supervisor: listed, bounded by maxChildren, drained with it", async () => {
    const app = await boot({ supervisors: { default: { maxChildren: 1 } } });
    const fanOut = app.get(FanOut);
    const supervisor = app.get(TaskSupervisor);
    const gate = deferred<string>();
    const task = fanOut.async(() => gate.promise);
    expect(supervisor.children().map((c) => c.id)).toEqual([task.id]);
    expect(() => fanOut.async(() => 1)).toThrow(/maxChildren/);
    const closing = app.close();
    gate.resolve('done');
    await closing;
    expect(task.outcome).toEqual({ status: 'fulfilled', value: 'done' });
  });

  it('app.close() does not wait when nothing runs', async () => {
    const app = await boot({ shutdownTimeout: 60_000 });
    await app.get(FanOut).map([1], (n) => n);
    const started = Date.now();
    await app.close();
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
