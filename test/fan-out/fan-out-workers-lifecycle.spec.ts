import { createHook } from 'node:async_hooks';
import { Test } from '@nestjs/testing';
import { ConcurrencyModule, FanOut, workerFn } from 'nestjs-concurrency';

const CPU = new URL('./workers/cpu.worker.mjs', import.meta.url);
const spin = workerFn<number, unknown>(CPU, 'spin');
const spinForever = workerFn<unknown, never>(CPU, 'spinForever');
const native = workerFn<number, { ms: number; threadId: number }>(CPU, 'native');

/**
 * Worker threads of this process, counted with async_hooks ('WORKER' resources): a Worker is counted from its
 * creation to its destruction, whether or not piscina ever reported it. `process.getActiveResourcesInfo()` does not
 * list Worker threads on Node 20.
 */
function threadCounter() {
  const live = new Set<number>();
  let started = 0;
  const hook = createHook({
    init: (id, type) => {
      if (type !== 'WORKER') return;
      live.add(id);
      started++;
    },
    destroy: (id) => void live.delete(id),
  }).enable();
  return {
    get live() {
      return live.size;
    },
    get started() {
      return started;
    },
    stop: () => hook.disable(),
  };
}

async function eventually(check: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}

async function boot(fanOut: Parameters<typeof ConcurrencyModule.forRoot>[0] extends infer O ? O : never) {
  const moduleRef = await Test.createTestingModule({ imports: [ConcurrencyModule.forRoot(fanOut)] }).compile();
  return moduleRef.createNestApplication({ logger: false, abortOnError: false }).init();
}

describe('FanOut worker threads: nothing outlives app.close()', () => {
  it('leaves no thread behind after 20 lifecycles with items timing out and aborted while close runs', async () => {
    const threads = threadCounter();
    try {
      for (let round = 0; round < 20; round++) {
        const app = await boot({ fanOut: { threads: 2, timeout: 40 }, shutdownTimeout: 100 });
        const fan = app.get(FanOut);
        // Items time out all along (each ends its thread and piscina replaces it), and a call is still running
        // when the drain deadline passes, so its items are aborted while the pools close.
        const churn = fan
          .settle(
            Array.from({ length: 400 }, () => 0),
            spinForever,
            { concurrency: 4 },
          )
          .catch(() => undefined);
        const busy = fan.map([1e9, 1e9], spin, { timeout: Infinity }).catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, 20 + (round % 5) * 15));
        await app.close();
        await Promise.all([churn, busy]);
        // async_hooks reports a Worker's destroy a few turns after its exit: a short grace, not a wait for threads.
        const gone = await eventually(() => threads.live === 0, 500);
        expect({ round, live: threads.live, gone }).toEqual({ round, live: 0, gone: true });
      }
    } finally {
      threads.stop();
    }
  }, 120_000);

  it('waits at close for a thread stuck in a native call, and starts no replacement once shutdown began', async () => {
    const threads = threadCounter();
    try {
      const app = await boot({ fanOut: { threads: 2 }, shutdownTimeout: 100 });
      const fan = app.get(FanOut);
      expect(await fan.map([1, 2], spin)).toHaveLength(2);
      const startedBefore = threads.started;
      // Two items, each in one pbkdf2Sync call of about 1.5 s: terminate() reaches their threads only after it.
      const stuck = fan.map([1500, 1500], native, { timeout: Infinity }).catch((e: unknown) => e);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await app.close();
      await stuck;
      // No thread was started after the two the items ran on (no replacement for the terminated ones) ...
      expect(threads.started - startedBefore).toBe(0);
      // ... and app.close() resolved only once both had exited.
      expect(await eventually(() => threads.live === 0, 500)).toBe(true);
    } finally {
      threads.stop();
    }
  }, 60_000);
});
