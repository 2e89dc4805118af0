import { createHook } from 'node:async_hooks';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Test } from '@nestjs/testing';
import {
  ConcurrencyModule,
  ConcurrencyOptionsError,
  FanOut,
  type FanOutModuleOptions,
  TaskTimeoutError,
  workerFn,
} from 'nestjs-concurrency';

const CPU = new URL('./workers/cpu.worker.mjs', import.meta.url);
const MOVE = new URL('./workers/move.worker.mjs', import.meta.url);
const spin = workerFn<number, { threadId: number }>(CPU, 'spin');
const native = workerFn<number, { ms: number; threadId: number }>(CPU, 'native');

function fanOut(fanOutOptions: FanOutModuleOptions = {}): FanOut {
  return new FanOut({
    fanOut: { concurrency: 16, timeout: 10_000, threads: 2, ...fanOutOptions },
    shutdownTimeout: 2000,
  });
}

/**
 * Live Worker threads of this process, and the most seen at once: counted from their async_hooks 'WORKER' init to
 * their exit. async_hooks reports a Worker's destroy some turns after it exited (a thread started meanwhile would be
 * counted twice), so the exit is taken where Node reports it to the Worker: the handle's `onexit` callback.
 */
function threadCounter() {
  const live = new Set<number>();
  let peak = 0;
  const hook = createHook({
    init: (id, type, _trigger, resource) => {
      if (type !== 'WORKER') return;
      live.add(id);
      peak = Math.max(peak, live.size);
      let onexit: ((...args: unknown[]) => unknown) | undefined;
      Object.defineProperty(resource, 'onexit', {
        configurable: true,
        get: () => onexit,
        set: (fn: (...args: unknown[]) => unknown) => {
          onexit = (...args) => {
            live.delete(id);
            return fn(...args);
          };
        },
      });
    },
    destroy: (id) => void live.delete(id),
  }).enable();
  return {
    get live() {
      return live.size;
    },
    get peak() {
      return peak;
    },
    resetPeak: () => void (peak = live.size),
    stop: () => hook.disable(),
  };
}

async function eventually(check: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

describe('FanOut worker pools: keyed by real path, bounded, shrinking', () => {
  it('shares one pool for one file named by ?query, #hash, // or a symlink', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fan-out-link-'));
    const link = join(dir, 'linked.worker.mjs');
    symlinkSync(fileURLToPath(CPU), link);
    const fan = fanOut({ threads: 1 });
    const threads = threadCounter();
    try {
      const spellings = [
        workerFn<number, { threadId: number }>(CPU, 'spin'),
        workerFn<number, { threadId: number }>(new URL(`${CPU.href}?v=2`), 'spin'),
        workerFn<number, { threadId: number }>(new URL(`${CPU.href}#x`), 'spin'),
        workerFn<number, { threadId: number }>(fileURLToPath(CPU).replace('/workers/', '//workers/'), 'spin'),
        workerFn<number, { threadId: number }>(link, 'spin'),
      ];
      const ids = new Set<number>();
      for (const fn of spellings) for (const r of await fan.map([1, 1], fn)) ids.add(r.threadId);
      expect(ids.size).toBe(1);
      expect(threads.peak).toBe(1);
    } finally {
      threads.stop();
      await fan.onApplicationShutdown();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ends idle threads after fanOut.idleTimeout', async () => {
    const fan = fanOut({ threads: 2, idleTimeout: 200 });
    const threads = threadCounter();
    try {
      await fan.map([20, 20], spin);
      expect(threads.live).toBe(2);
      expect(await eventually(() => threads.live === 0, 5000)).toBe(true);
      expect(await fan.map([1, 2], workerFn(CPU))).toEqual([2, 4]); // started again on demand
    } finally {
      threads.stop();
      await fan.onApplicationShutdown();
    }
  });

  it('never runs more than fanOut.maxThreads threads across modules, and each workerFn gets its own threads', async () => {
    const fan = fanOut({ threads: 2, maxThreads: 3 });
    const threads = threadCounter();
    const CJS = new URL('./workers/cjs.worker.cjs', import.meta.url);
    try {
      const one = workerFn<number, { threadId: number }>(CPU, 'spin', { threads: 1 });
      // 3 modules x 2 threads asked, at once: at most 3 threads live.
      const a = fan.map([50, 50, 50, 50], spin);
      const b = fan.map([50, 50, 50, 50], workerFn(new URL('./workers/move.worker.mjs', import.meta.url), 'copied'));
      const c = fan.map([1, 2, 3, 4], workerFn(CJS));
      await Promise.all([a, b, c]);
      expect(threads.peak).toBeLessThanOrEqual(3);
      // threads: 1 on the workerFn: a call runs one item at a time by default.
      const single = await fan.map([20, 20, 20], one);
      expect(new Set(single.map((r) => r.threadId)).size).toBe(1);
      expect(() => workerFn(CPU, 'spin', { threads: 0 })).toThrow(/invalid option "threads": expected an integer >= 1/);
    } finally {
      threads.stop();
      await fan.onApplicationShutdown();
    }
  });

  it('bounds the threads alive while timed-out items finish a native call', async () => {
    const fan = fanOut({ threads: 2, maxThreads: 2 });
    const threads = threadCounter();
    try {
      await fan.map([1, 1], spin);
      threads.resetPeak();
      // 6 items of ~1 s in ONE native call, timing out at 150 ms: terminate() reaches a thread only after the call.
      const outcomes = await fan.settle([1000, 1000, 1000, 1000, 1000, 1000], native, { timeout: 150 });
      expect(outcomes.every((o) => o.status === 'rejected' && o.reason instanceof TaskTimeoutError)).toBe(true);
      expect(threads.peak).toBeLessThanOrEqual(2);
    } finally {
      threads.stop();
      await fan.onApplicationShutdown();
    }
  }, 30_000);
});

describe('FanOut worker threads: options, transfer, dead threads, errors, results', () => {
  async function boot(options: object) {
    const moduleRef = await Test.createTestingModule({ imports: [ConcurrencyModule.forRoot(options)] }).compile();
    return moduleRef.createNestApplication({ logger: false, abortOnError: false }).init();
  }

  it('accepts fanOut.resourceLimits and refuses bad values naming the option; a thread over its limit fails its item only', async () => {
    const bad = await boot({ fanOut: { resourceLimits: { maxOldGenerationSizeMb: -1 } } }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(ConcurrencyOptionsError);
    expect((bad as Error).message).toContain('"fanOut.resourceLimits.maxOldGenerationSizeMb"');
    const app = await boot({ fanOut: { threads: 1, resourceLimits: { maxOldGenerationSizeMb: 32 } } });
    try {
      const fan = app.get(FanOut);
      const outcomes = await fan.settle([1], workerFn(CPU, 'grow'), { timeout: 30_000 });
      const reason = (outcomes[0] as { reason: Error & { code?: string } }).reason;
      expect(reason.code).toBe('ERR_WORKER_OUT_OF_MEMORY');
      expect(reason.message).toContain(`workerFn(${CPU.href}, "grow")`);
      expect(reason.message).toContain('item 0');
      expect(await fan.map([1, 2], workerFn(CPU))).toEqual([2, 4]);
    } finally {
      await app.close();
    }
  }, 60_000);

  it('fails an item whose input holds a detached buffer with transfer: true, naming module and export; shared buffers pass', async () => {
    const fan = fanOut();
    try {
      const byteLength = workerFn<unknown, number>(CPU, 'byteLength');
      const view = new Uint8Array(16);
      structuredClone(view.buffer, { transfer: [view.buffer] });
      const raw = new ArrayBuffer(16);
      structuredClone(raw, { transfer: [raw] });
      const outcomes = await fan.settle([view, raw, { data: view }, new Uint8Array(4)], byteLength, { transfer: true });
      expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected', 'rejected', 'fulfilled']);
      const reason = (outcomes[0] as { reason: Error }).reason;
      expect(reason).toBeInstanceOf(TypeError);
      expect(reason.message).toContain(`workerFn(${CPU.href}, "byteLength"): the input of item 0 holds a detached`);
      const shared = new SharedArrayBuffer(8);
      expect(await fan.map([shared, new Int32Array(shared)], byteLength, { transfer: true })).toEqual([8, 8]);
      expect(shared.byteLength).toBe(8); // shared, not moved
    } finally {
      await fan.onApplicationShutdown();
    }
  });

  it('labels an item whose thread exits (in the function or while its module loads) and keeps the pool going', async () => {
    const fan = fanOut({ threads: 1 });
    try {
      const inFn = await fan.map([1], workerFn(CPU, 'exitNow')).catch((e: unknown) => e);
      expect((inFn as Error).message).toContain(`workerFn(${CPU.href}, "exitNow"): the worker thread died`);
      expect((inFn as Error).message).toContain('exited with code: 3');
      const atLoad = new URL('./workers/exit-at-load.worker.mjs', import.meta.url);
      const loading = await fan.map([1], workerFn(atLoad)).catch((e: unknown) => e);
      expect((loading as Error).message).toContain(`workerFn(${atLoad.href}, "default"): the worker thread died`);
      expect(await fan.map([1, 2], workerFn(CPU))).toEqual([2, 4]);
    } finally {
      await fan.onApplicationShutdown();
    }
  });

  it('keeps cause, own properties (status, code, details) and AggregateError.errors across the thread', async () => {
    const fan = fanOut();
    try {
      const rich = (await fan.map([1], workerFn(CPU, 'richError')).catch((e: unknown) => e)) as Error & {
        status: number;
        code: string;
        details: unknown;
        when: Date;
        cause: Error & { code: string };
      };
      expect(rich.name).toBe('HttpError');
      expect(rich.status).toBe(502);
      expect(rich.code).toBe('E_UPSTREAM');
      expect(rich.details).toEqual({ retryable: true, tries: [1, 2] });
      expect(rich.when).toEqual(new Date(0));
      expect('notCloneable' in rich).toBe(false);
      expect(rich.cause).toBeInstanceOf(TypeError);
      expect(rich.cause.message).toBe('socket hang up');
      expect(rich.cause.code).toBe('ECONNRESET');
      const all = (await fan.map([1], workerFn(CPU, 'aggregate')).catch((e: unknown) => e)) as AggregateError;
      expect(all).toBeInstanceOf(AggregateError);
      expect(all.message).toBe('all failed');
      expect(all.errors).toHaveLength(3);
      expect(all.errors[0]).toBeInstanceOf(RangeError);
      expect((all.errors[0] as { code: string }).code).toBe('E1');
      expect((all.errors[1] as { name: string; status: number }).name).toBe('HttpError');
      expect((all.errors[1] as { status: number }).status).toBe(404);
      expect(all.errors[2]).toBe('third');
      const cycle = (await fan.map([1], workerFn(CPU, 'causeCycle')).catch((e: unknown) => e)) as Error;
      expect(cycle.message).toBe('outer');
    } finally {
      await fan.onApplicationShutdown();
    }
  });

  it('moves a large result with piscina move() instead of copying it', async () => {
    const fan = fanOut({ threads: 1 });
    try {
      const bytes = 64 * 1024 * 1024;
      const [moved] = await fan.map([bytes], workerFn<number, Uint8Array>(MOVE, 'moved'));
      expect(moved).toBeInstanceOf(Uint8Array);
      expect(moved.byteLength).toBe(bytes);
      expect(moved[bytes - 1]).toBe(7);
      const [copied] = await fan.map([1024], workerFn<number, Uint8Array>(MOVE, 'copied'));
      expect(copied[1023]).toBe(7);
    } finally {
      await fan.onApplicationShutdown();
    }
  }, 30_000);
});
