import { createHook } from 'node:async_hooks';
import { threadId } from 'node:worker_threads';
import { Test } from '@nestjs/testing';
import {
  ConcurrencyModule,
  ConcurrencyOptionsError,
  FanOut,
  type Outcome,
  TaskAbortedError,
  TaskTimeoutError,
  workerFn,
} from 'nestjs-concurrency';

const CPU = new URL('./workers/cpu.worker.mjs', import.meta.url);
const CJS = new URL('./workers/cjs.worker.cjs', import.meta.url);

type Where = { input: unknown; index: number; threadId: number };
type Spun = { ms: number; index: number; threadId: number; end: number };

const double = workerFn<number, number>(CPU);
const where = workerFn<unknown, Where>(CPU, 'where');
const spin = workerFn<number, Spun>(CPU, 'spin');
const spinForever = workerFn<unknown, never>(CPU, 'spinForever');

function fanOut(threads = 2, shutdownTimeout = 2000): FanOut {
  return new FanOut({ fanOut: { concurrency: 16, timeout: 10_000, threads }, shutdownTimeout });
}

/** CPU time (user + system, ms) the whole process (every thread) used during `ms` of wall time from now. */
async function cpuOver(ms: number): Promise<number> {
  const start = process.cpuUsage();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

/** Polls until `check` holds, up to `ms`. */
async function eventually(check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('FanOut on worker threads (workerFn)', () => {
  let fan: FanOut;
  beforeEach(() => {
    fan = fanOut();
  });
  afterEach(async () => {
    await fan.onApplicationShutdown();
  });

  it('runs the export on worker threads and resolves map with the results in input order', async () => {
    const results = await fan.map([1, 2, 3, 4, 5], where);
    expect(results.map((r) => [r.input, r.index])).toEqual([
      [1, 0],
      [2, 1],
      [3, 2],
      [4, 3],
      [5, 4],
    ]);
    expect(results.every((r) => r.threadId !== threadId)).toBe(true);
    expect(await fan.map([1, 2, 3], double)).toEqual([2, 4, 6]);
  });

  it('runs at most `concurrency` items at once and pulls the input only as items finish', async () => {
    let pulled = 0;
    let finished = 0;
    let ahead = 0;
    function* inputs() {
      for (let i = 0; i < 8; i++) {
        ahead = Math.max(ahead, pulled - finished);
        pulled++;
        yield 30;
      }
    }
    for await (const outcome of fan.stream(inputs(), spin, { concurrency: 2 })) {
      expect(outcome.status).toBe('fulfilled');
      finished++;
    }
    expect(pulled).toBe(8);
    // A pull happens only while fewer than 2 items are running or waiting to be consumed.
    expect(ahead).toBeLessThanOrEqual(2);
  });

  it('streams unordered outcomes in completion order, ordered ones in input order', async () => {
    const unordered: number[] = [];
    for await (const o of fan.stream([400, 20], spin, { ordered: false })) unordered.push(o.index);
    expect(unordered).toEqual([1, 0]);
    const ordered: number[] = [];
    for await (const o of fan.stream([400, 20], spin)) ordered.push(o.index);
    expect(ordered).toEqual([0, 1]);
  });

  it("fails map fast with the worker error's class name and message", async () => {
    const failOn = workerFn<number, number>(CPU, 'failOn');
    const error = await fan.map([1, 2, 3, 4, 5, 6], failOn, { concurrency: 2 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).name).toBe('ValidationError');
    expect((error as Error).message).toBe('item 3 is not valid');
    expect((error as Error).stack).toMatch(/^ValidationError: item 3 is not valid\n\s+at failOn/);
    await expect(fan.map([1], workerFn(CPU, 'throwsString'))).rejects.toBe('plain string');
    const range = await fan.map([1], workerFn(CPU, 'rangeFail')).catch((e: unknown) => e);
    expect(range).toBeInstanceOf(RangeError);
    expect((range as Error).message).toBe('out of range in the worker');
  });

  it('settles every item, failures included, and never rejects', async () => {
    const failOn = workerFn<number, number>(CPU, 'failOn');
    const outcomes = await fan.settle([1, 3, 5], failOn);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    const failed = outcomes[1] as Extract<Outcome<number, number>, { status: 'rejected' }>;
    expect((failed.reason as Error).name).toBe('ValidationError');
    expect(failed.input).toBe(3);
  });

  it('times out an item that spins on the CPU: skip in settle, TaskTimeoutError from map', async () => {
    const outcomes = await fan.settle([{}, 1], workerFn(CPU, 'spinForever'), { timeout: 300 });
    expect(outcomes[0].status).toBe('rejected');
    expect((outcomes[0] as { reason: unknown }).reason).toBeInstanceOf(TaskTimeoutError);
    await expect(fan.map([1], spinForever, { timeout: 300 })).rejects.toBeInstanceOf(TaskTimeoutError);
    // The threads that were ended are replaced: the pool still runs work.
    expect(await fan.map([1, 2, 3, 4], double)).toEqual([2, 4, 6, 8]);
  });

  it('rejects with the parent signal reason when it aborts', async () => {
    const controller = new AbortController();
    const done = fan.map([1, 2], spinForever, { signal: controller.signal });
    setTimeout(() => controller.abort(new Error('client went away')), 100);
    await expect(done).rejects.toThrow('client went away');
  });

  describe('cancellation reaches the running work (CPU measured)', () => {
    // A spinning thread uses about one core. Each case measures the process CPU over a window while two items spin
    // (the control), then over the same window after the cancellation: it must drop to a small part of the control.
    // Bounds are generous: the machine is shared, so only the ratio to a control measured in the same run counts.
    const WINDOW = 800;

    /** CPU over the window once the pool has its threads back (their start-up is not what is measured). */
    async function idleCpu(): Promise<number> {
      expect(await fan.map([1, 2], double)).toEqual([2, 4]);
      return cpuOver(WINDOW);
    }

    async function spinningControl(): Promise<number> {
      const controller = new AbortController();
      const done = fan.settle([1, 2], spinForever, { signal: controller.signal }).catch(() => undefined);
      await cpuOver(200); // let both threads start spinning
      const control = await cpuOver(WINDOW);
      controller.abort(new Error('end of control'));
      await done;
      return control;
    }

    it('ends the thread of an item that times out while it spins, and replaces it', async () => {
      const control = await spinningControl();
      expect(control).toBeGreaterThan(WINDOW * 0.25); // the control really spun (at least half a core)
      const outcomes = await fan.settle([1, 2], spinForever, { timeout: 200 });
      expect(outcomes.every((o) => o.status === 'rejected' && o.reason instanceof TaskTimeoutError)).toBe(true);
      const after = await idleCpu();
      expect(after).toBeLessThan(control / 4);
      const threads = new Set((await fan.map([1, 2, 3, 4, 5, 6], spin)).map((r) => r.threadId));
      expect(threads.size).toBeGreaterThanOrEqual(1);
    });

    it('ends the threads of items still running when the parent signal aborts', async () => {
      const control = await spinningControl();
      expect(control).toBeGreaterThan(WINDOW * 0.25);
      const controller = new AbortController();
      const done = fan.map([1, 2], spinForever, { signal: controller.signal }).catch((e: unknown) => e);
      await cpuOver(200);
      controller.abort(new Error('stop'));
      expect(await done).toEqual(new Error('stop'));
      const after = await idleCpu();
      expect(after).toBeLessThan(control / 4);
    });

    it('ends the work in flight when the consumer breaks out of a stream', async () => {
      const control = await spinningControl();
      expect(control).toBeGreaterThan(WINDOW * 0.25);
      // Item 0 finishes fast; items 1 and 2 spin for good. Leaving the loop after the first outcome must end them.
      let seen = 0;
      for await (const outcome of fan.stream([10, 1e9, 1e9], spin, { concurrency: 3, ordered: false })) {
        seen++;
        expect(outcome.index).toBe(0);
        break;
      }
      expect(seen).toBe(1);
      const after = await idleCpu();
      expect(after).toBeLessThan(control / 4);
    });

    it('ends the threads of the other items when one item fails map', async () => {
      const control = await spinningControl();
      expect(control).toBeGreaterThan(WINDOW * 0.25);
      const failOrSpin = workerFn<string, never>(CPU, 'failOrSpin');
      await expect(fan.map(['spin', 'fail'], failOrSpin, { concurrency: 2 })).rejects.toThrow('asked to fail');
      const after = await idleCpu();
      expect(after).toBeLessThan(control / 4);
    });
  });

  it('shares one pool of fanOut.threads threads per module between calls', async () => {
    const one = fanOut(1);
    try {
      const [a, b] = await Promise.all([one.map([20, 20, 20], spin), one.map([20, 20], spin)]);
      expect(new Set([...a, ...b].map((r) => r.threadId)).size).toBe(1);
    } finally {
      await one.onApplicationShutdown();
    }
    const [c, d] = await Promise.all([fan.map([50, 50, 50, 50], spin), fan.map([50, 50, 50, 50], spin)]);
    expect(new Set([...c, ...d].map((r) => r.threadId)).size).toBe(2);
  });

  it('runs fanOut.threads items at once when the call does not set concurrency', async () => {
    // The k-th input (from 0) may be pulled only once k - 2 items have ended: 2 threads, so 2 items in flight.
    const pulledAt: number[] = [];
    function* inputs() {
      for (let i = 0; i < 6; i++) {
        pulledAt.push(Date.now());
        yield 100;
      }
    }
    const results = await fan.map(inputs(), spin);
    const ends = results.map((r) => r.end).sort((a, b) => a - b);
    for (let k = 2; k < 6; k++) expect(pulledAt[k]).toBeGreaterThanOrEqual(ends[k - 2]);
    expect(new Set(results.map((r) => r.threadId)).size).toBe(2);
  });

  it('moves ArrayBuffers to the worker with transfer: true, and copies them without', async () => {
    const byteLength = workerFn<ArrayBuffer | Uint8Array, number>(CPU, 'byteLength');
    const copied = new Uint8Array(1024);
    expect(await fan.map([copied], byteLength)).toEqual([1024]);
    expect(copied.byteLength).toBe(1024);
    const moved = new Uint8Array(1024);
    const raw = new ArrayBuffer(64);
    expect(await fan.map([moved, raw], byteLength, { transfer: true })).toEqual([1024, 64]);
    expect(moved.byteLength).toBe(0); // detached: it now belongs to the worker
    expect(raw.byteLength).toBe(0);
    const pair = { a: new ArrayBuffer(8), b: new Float64Array(4) };
    expect(await fan.map([pair], workerFn(CPU, 'sumBuffers'), { transfer: true })).toEqual([12]);
    expect(pair.a.byteLength).toBe(0);
    expect(pair.b.length).toBe(0);
  });

  it('accepts a CommonJS worker module (exports.default and named exports)', async () => {
    expect(await fan.map([1, 2, 3], workerFn(CJS))).toEqual([1, 4, 9]);
    expect(await fan.map([1, 2, 3], workerFn(CJS.pathname, 'triple'))).toEqual([3, 6, 9]);
  });

  it('works through stream$', async () => {
    const values: number[] = [];
    await new Promise<void>((resolve, reject) =>
      fan.stream$([1, 2, 3], double).subscribe({
        next: (o) => o.status === 'fulfilled' && values.push(o.value),
        error: reject,
        complete: resolve,
      }),
    );
    expect(values).toEqual([2, 4, 6]);
  });

  describe('bad input fails with an error naming the module and the export, never a hang', () => {
    it('a module that does not exist', async () => {
      const missing = new URL('./workers/missing.worker.mjs', import.meta.url);
      const error = await fan.map([1], workerFn(missing, 'run')).catch((e: unknown) => e);
      expect((error as Error).message).toContain('workerFn(' + missing.href + ', "run")');
      expect((error as Error).message).toContain('does not exist');
      const outcomes = await fan.settle([1, 2], workerFn(missing));
      expect(outcomes.every((o) => o.status === 'rejected')).toBe(true);
    });

    it('a TypeScript source instead of the compiled file', async () => {
      const source = new URL('./fan-out-workers.spec.js', import.meta.url);
      const error = await fan.map([1], workerFn(source)).catch((e: unknown) => e);
      expect((error as Error).message).toMatch(/TypeScript source is there: .* compiled file/);
    });

    it('an export that is not a function, or missing', async () => {
      const error = await fan.map([1], workerFn(CPU, 'notAFunction')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TypeError);
      expect((error as Error).message).toContain(`workerFn(${CPU.href}, "notAFunction"): the module has no function`);
      expect((error as Error).message).toContain('where');
      await expect(fan.map([1], workerFn(CPU, 'nope'))).rejects.toThrow('"nope"');
    });

    it('an input that cannot be cloned', async () => {
      const inputs: unknown[] = [1, () => 2];
      const error = await fan.map(inputs, double as never).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TypeError);
      expect((error as Error).message).toContain(
        `workerFn(${CPU.href}, "default"): the input of item 1 cannot be sent`,
      );
    });

    it('a result that cannot be cloned', async () => {
      const error = await fan.map([1], workerFn(CPU, 'returnsFunction')).catch((e: unknown) => e);
      expect((error as Error).message).toContain(`workerFn(${CPU.href}, "returnsFunction")`);
      expect((error as Error).message).toContain('item 0 (an object): most likely its result cannot be sent back');
      expect(await fan.map([1], double)).toEqual([2]);
    });

    it('a module argument that is not a URL or an absolute path, or an empty export name', () => {
      expect(() => workerFn('./workers/cpu.worker.mjs')).toThrow(/invalid argument "module".*import\.meta\.url/);
      expect(() => workerFn(new URL('https://example.com/w.js'))).toThrow('invalid argument "module"');
      expect(() => workerFn(CPU, '')).toThrow(`workerFn(${CPU.href}): invalid argument "exportName"`);
    });

    it('a worker function called directly instead of through FanOut', async () => {
      await expect(double(1, undefined as never)).rejects.toThrow('pass it to FanOut.map()');
    });
  });
});

describe('workerFn in ConcurrencyModule', () => {
  async function boot(options: Parameters<typeof ConcurrencyModule.forRoot>[0], shutdownTimeout?: number) {
    const moduleRef = await Test.createTestingModule({
      imports: [ConcurrencyModule.forRoot({ ...options, shutdownTimeout })],
    }).compile();
    return moduleRef.createNestApplication({ logger: false, abortOnError: false }).init();
  }

  it('refuses a bad fanOut.threads at boot, naming the option', async () => {
    for (const threads of [0, 1.5, Infinity, '2']) {
      const error = await boot({ fanOut: { threads: threads as number } }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConcurrencyOptionsError);
      expect((error as Error).message).toContain('"fanOut.threads"');
    }
  });

  it('drains the calls in flight at app.close(), then leaves no worker thread behind', async () => {
    const live = new Set<number>();
    const hook = createHook({
      init: (id, type) => void (type === 'WORKER' && live.add(id)),
      destroy: (id) => void live.delete(id),
    }).enable();
    try {
      const app = await boot({ fanOut: { threads: 2 } }, 5000);
      const fan = app.get(FanOut);
      await fan.map([1, 2], double);
      // timed-out items end their threads, which the pool replaces: those must be gone at close too
      await fan.settle([1], spinForever, { timeout: 100 });
      expect(live.size).toBeGreaterThan(0);
      const inFlight = fan.map([300, 300], spin);
      await new Promise((resolve) => setTimeout(resolve, 50));
      await app.close();
      expect((await inFlight).map((r) => r.ms)).toEqual([300, 300]);
      // async_hooks reports a WORKER's destroy on a later turn than its exit: poll briefly.
      await eventually(() => live.size === 0, 1000);
    } finally {
      hook.disable();
    }
  });

  it('cancels work still running when shutdownTimeout passes, and ends its threads', async () => {
    const app = await boot({ fanOut: { threads: 2 } }, 200);
    const fan = app.get(FanOut);
    const running = fan.map([{}, {}], spinForever, { timeout: Infinity }).catch((e: unknown) => e);
    await new Promise((resolve) => setTimeout(resolve, 100));
    await app.close();
    expect(await running).toBeInstanceOf(TaskAbortedError);
    expect(await cpuOver(500)).toBeLessThan(150);
  });
});
