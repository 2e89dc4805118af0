import { Test } from '@nestjs/testing';
import { ConcurrencyModule, FanOut, TaskAbortedError, TaskTimeoutError } from 'nestjs-concurrency';
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
    const itemSignals: AbortSignal[] = [];
    const run = fanOut.map([1, 2], (_, ctx) => {
      itemSignals.push(ctx.signal);
      return untilAborted(ctx.signal);
    });
    const runRejected = expect(run).rejects.toBeInstanceOf(TaskAbortedError);
    await flush();
    const closing = app.close();
    quickGate.resolve('finished during the drain');
    await closing;
    expect(quick.outcome).toEqual({ status: 'fulfilled', value: 'finished during the drain' });
    expect(stuck.signal.reason).toBeInstanceOf(TaskAbortedError);
    await runRejected;
    expect(itemSignals.every((s) => s.reason instanceof TaskAbortedError)).toBe(true);
  });

  it('app.close() does not wait when nothing runs', async () => {
    const app = await boot({ shutdownTimeout: 60_000 });
    await app.get(FanOut).map([1], (n) => n);
    const started = Date.now();
    await app.close();
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
