import { FanOut, SupervisorShutdownError, Task, TaskAbortedError, TaskTimeoutError } from 'nestjs-concurrency';
import { deferred, flush, untilAborted } from './helpers.js';

const fanOut = new FanOut();

describe('FanOut.async / awaitMany / yieldMany', () => {
  it('async() returns a Task whose fn gets a signal, an id and attempt 1', async () => {
    const task = fanOut.async((ctx) => ({ id: ctx.id, attempt: ctx.attempt, aborted: ctx.signal.aborted }));
    expect(task).toBeInstanceOf(Task);
    expect(await task.await()).toEqual({ id: task.id, attempt: 1, aborted: false });
  });

  it('a throwing fn is kept for the awaiter, not an unhandled rejection', async () => {
    const task = fanOut.async(() => {
      throw new Error('sync failure');
    });
    await flush();
    expect(task.outcome).toMatchObject({ status: 'rejected' });
    await expect(task.await()).rejects.toThrow('sync failure');
  });

  it('awaitMany resolves with the results in task order', async () => {
    const gates = [deferred<string>(), deferred<string>()];
    const tasks = [fanOut.async(() => gates[0].promise), fanOut.async(() => gates[1].promise)];
    gates[1].resolve('second');
    await flush();
    gates[0].resolve('first');
    expect(await fanOut.awaitMany(tasks)).toEqual(['first', 'second']);
    expect(await fanOut.awaitMany([])).toEqual([]);
  });

  it('awaitMany rejects with the first failure and aborts the tasks still running', async () => {
    const boom = new Error('boom');
    const slow = fanOut.async((ctx) => untilAborted(ctx.signal));
    const failing = fanOut.async(async () => {
      throw boom;
    });
    await expect(fanOut.awaitMany([slow, failing])).rejects.toBe(boom);
    expect(slow.signal.reason).toBeInstanceOf(TaskAbortedError);
  });

  describe('deadlines (fake timers)', () => {
    beforeEach(() => vi.useFakeTimers());
    afterEach(() => vi.useRealTimers());

    it('awaitMany has one deadline for the group: TaskTimeoutError, and the late tasks are aborted', async () => {
      const quick = fanOut.async(() => 'quick');
      const late = fanOut.async((ctx) => untilAborted(ctx.signal));
      const done = fanOut.awaitMany([quick, late], 1000);
      const rejected = expect(done).rejects.toBeInstanceOf(TaskTimeoutError);
      await vi.advanceTimersByTimeAsync(999);
      expect(late.signal.aborted).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      await rejected;
      expect(late.signal.reason).toBeInstanceOf(TaskTimeoutError);
      expect(quick.outcome).toEqual({ status: 'fulfilled', value: 'quick' });
    });

    it('yieldMany returns outcomes for finished tasks and null for the rest, which keep running', async () => {
      const gate = deferred<string>();
      const done = fanOut.async(() => 'done');
      const failed = fanOut.async(async () => {
        throw new Error('failed');
      });
      const running = fanOut.async(() => gate.promise);
      const pending = fanOut.yieldMany([done, failed, running], 500);
      await vi.advanceTimersByTimeAsync(500);
      const outcomes = await pending;
      expect(outcomes[0]).toEqual({ status: 'fulfilled', value: 'done' });
      expect(outcomes[1]).toMatchObject({ status: 'rejected' });
      expect(outcomes[2]).toBeNull();
      expect(running.signal.aborted).toBe(false);
      gate.resolve('later');
      expect(await fanOut.yieldMany([running], 500)).toEqual([{ status: 'fulfilled', value: 'later' }]);
    });
  });

  it('yieldMany returns early once every task has finished', async () => {
    const tasks = [fanOut.async(() => 1), fanOut.async(() => 2)];
    const started = Date.now();
    expect(await fanOut.yieldMany(tasks, 60_000)).toEqual([
      { status: 'fulfilled', value: 1 },
      { status: 'fulfilled', value: 2 },
    ]);
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('new FanOut() outside Nest runs tasks under a private supervisor that onApplicationShutdown() drains', async () => {
    const own = new FanOut({ fanOut: { concurrency: 16, timeout: 5000 }, shutdownTimeout: 50 });
    const gate = deferred<number>();
    const quick = own.async(() => gate.promise);
    const stuck = own.async((ctx) => untilAborted(ctx.signal));
    await flush(1);
    const closing = own.onApplicationShutdown();
    gate.resolve(1);
    await closing; // after 50 ms the stuck task is aborted, and it stops at once
    expect(quick.outcome).toEqual({ status: 'fulfilled', value: 1 });
    expect(quick.signal.aborted).toBe(false);
    expect(stuck.signal.reason).toBeInstanceOf(TaskAbortedError);
    expect(() => own.async(() => 1)).toThrow(SupervisorShutdownError);
  });

  it('rejects a timeout setTimeout cannot wait (> 2^31 - 1 ms) instead of firing after 1 ms', () => {
    expect(() => fanOut.awaitMany([], 2 ** 31)).toThrow(RangeError);
    expect(() => fanOut.yieldMany([], 2 ** 31)).toThrow(/"timeoutMs".*2147483647/);
  });

  it('rejects invalid arguments naming them', () => {
    expect(() => fanOut.async('x' as never)).toThrow(/"fn"/);
    expect(() => fanOut.awaitMany([{}] as never)).toThrow(/"tasks"/);
    expect(() => fanOut.awaitMany([], -1)).toThrow(RangeError);
    expect(() => fanOut.yieldMany([], Number.NaN)).toThrow(/"timeoutMs"/);
  });
});
