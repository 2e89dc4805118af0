import { Injectable } from '@nestjs/common';
import { Redis } from 'ioredis';
import {
  DurableSupervisor,
  type DurableTaskContext,
  DurableTaskError,
  InvalidPayloadError,
  TaskAbortedError,
  TaskHandler,
  TaskTimeoutError,
  UnknownTaskError,
} from 'nestjs-concurrency';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';
import { bootDurable, type DurableApp, uniquePrefix } from './helpers.js';

/** What the handlers saw, across the app instances of a test. */
const runs: Array<{ task: string; n: number; instance: string; attempt: number }> = [];
/** Items running now, per task: `aborted` is set when their signal aborts. */
const live = new Map<number, { instance: string; aborted?: unknown }>();

function handlersFor(instance: string) {
  @Injectable()
  class Handlers {
    @TaskHandler('double', { restart: 'temporary' })
    double(n: number, ctx: DurableTaskContext) {
      runs.push({ task: 'double', n, instance, attempt: ctx.attempt });
      return { n: n * 2, instance };
    }

    /** Fails for good (after one restart) on the input 'fail'; holds the others until their signal aborts or 3 s. */
    @TaskHandler('failOrHold', { maxRestarts: 1, backoff: 10 })
    async failOrHold(input: { n: number; fail?: boolean; ms?: number }, ctx: DurableTaskContext) {
      runs.push({ task: 'failOrHold', n: input.n, instance, attempt: ctx.attempt });
      if (input.fail) {
        await new Promise((resolve) => setTimeout(resolve, input.ms ?? 0));
        throw new Error(`item ${input.n} is bad`);
      }
      const entry: { instance: string; aborted?: unknown } = { instance };
      live.set(input.n, entry);
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, input.ms ?? 3000);
        ctx.signal.addEventListener(
          'abort',
          () => {
            entry.aborted = ctx.signal.reason;
            clearTimeout(timer);
            reject(ctx.signal.reason as Error);
          },
          { once: true },
        );
      });
      return input.n;
    }

    /** As failOrHold, without restarts: its first failure is final. */
    @TaskHandler('failOrHoldOnce', { restart: 'temporary' })
    failOrHoldOnce(input: { n: number; fail?: boolean; ms?: number }, ctx: DurableTaskContext) {
      return this.failOrHold(input, ctx);
    }

    /** Ignores its signal: only the batch's per-item timeout ends it. */
    @TaskHandler('sleepy', { restart: 'temporary' })
    async sleepy(ms: number, ctx: DurableTaskContext) {
      runs.push({ task: 'sleepy', n: ms, instance, attempt: ctx.attempt });
      await new Promise((resolve) => setTimeout(resolve, ms).unref());
      return ms;
    }
  }
  return Handlers;
}

describe.skipIf(!redisAvailable)('durable map / settle / batch (real redis-server, two instances)', () => {
  let server: RedisServer;
  let redis: Redis;
  const apps: DurableApp[] = [];

  beforeAll(async () => {
    server = await RedisServer.start();
    redis = new Redis(server.url);
  });
  afterAll(async () => {
    redis.disconnect();
    await server.stop();
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((a) => a.app.close()));
    runs.length = 0;
    live.clear();
  });

  /** Two worker instances on one prefix; the supervisor of the first. */
  async function cluster(prefix = uniquePrefix(), extra: object = {}) {
    for (const name of ['a', 'b']) {
      apps.push(
        await bootDurable({ connection: server.url, prefix, stalledTimeout: 4000, ...extra }, [handlersFor(name)]),
      );
    }
    return { prefix, supervisor: apps[0]!.app.get(DurableSupervisor), other: apps[1]!.app.get(DurableSupervisor) };
  }

  it('map resolves with the results in input order, items spread over every instance', async () => {
    const { supervisor } = await cluster();
    const inputs = Array.from({ length: 200 }, (_, i) => i);
    const results = await supervisor.map<number, { n: number; instance: string }>('double', inputs);
    expect(results.map((r) => r.n)).toEqual(inputs.map((i) => i * 2));
    expect(new Set(results.map((r) => r.instance))).toEqual(new Set(['a', 'b']));
    expect(runs.filter((r) => r.task === 'double')).toHaveLength(200);
  });

  it('settle gives one outcome per input in order and never rejects for an item', async () => {
    const { supervisor } = await cluster();
    const inputs = [0, 1, 2, 3].map((n) => ({ n, fail: n % 2 === 1, ms: 10 }));
    const outcomes = await supervisor.settle<object, number>('failOrHold', inputs);
    expect(outcomes.map((o) => [o.index, o.status])).toEqual([
      [0, 'fulfilled'],
      [1, 'rejected'],
      [2, 'fulfilled'],
      [3, 'rejected'],
    ]);
    expect(outcomes[0]).toEqual({ status: 'fulfilled', value: 0, index: 0 });
    const reason = (outcomes[1] as { reason: unknown }).reason;
    expect(reason).toBeInstanceOf(DurableTaskError);
    expect((reason as Error).message).toContain('item 1 is bad');
    // maxRestarts 1: the bad items ran twice each, no more.
    expect(runs.filter((r) => r.n === 1)).toHaveLength(2);
  });

  it('map fails fast: rejects with the failure, aborts running siblings on their instance, never runs the rest', async () => {
    const { supervisor } = await cluster();
    // 4 held items run first (concurrency 4), then the bad one; 50 more must never start.
    const inputs = [
      ...[0, 1, 2, 3].map((n) => ({ n, ms: 30_000 })),
      { n: 4, fail: true, ms: 1500 },
      ...Array.from({ length: 50 }, (_, i) => ({ n: 5 + i, ms: 10 })),
    ];
    const started = Date.now();
    const error = await supervisor.map('failOrHoldOnce', inputs, { concurrency: 5 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DurableTaskError);
    expect((error as Error).message).toContain('item 4 is bad');
    expect(Date.now() - started).toBeLessThan(15_000);
    await vi.waitFor(
      () => {
        // Those of 0-3 that started before item 4 failed (all of them, unless the machine is very slow).
        expect(live.size).toBeGreaterThanOrEqual(1);
        for (const entry of live.values()) expect(entry.aborted).toBeInstanceOf(TaskAbortedError);
      },
      { timeout: 10_000, interval: 50 },
    );
    // Give any wrongly released item time to start: none may.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(runs.filter((r) => r.n >= 5)).toEqual([]);
  });

  it('cancel(): nothing starts afterwards, running items are aborted, await() rejects', async () => {
    const { supervisor, other } = await cluster();
    const inputs = Array.from({ length: 20 }, (_, n) => ({ n, ms: 30_000 }));
    const batch = await supervisor.batch('failOrHold', inputs, { concurrency: 2 });
    await vi.waitFor(() => expect(live.size).toBe(2), { timeout: 10_000, interval: 20 });
    const awaited = batch.await().catch((e: unknown) => e);
    // Cancelled from the other instance, by id.
    await (await other.getBatch(batch.id))!.cancel();
    expect(await awaited).toBeInstanceOf(TaskAbortedError);
    await vi.waitFor(() => {
      for (const entry of live.values()) expect(entry.aborted).toBeInstanceOf(TaskAbortedError);
    });
    const settled = await batch.settle(10_000);
    expect(settled).toHaveLength(20);
    expect(settled.every((o) => o.status === 'rejected' && o.reason instanceof TaskAbortedError)).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(runs).toHaveLength(2);
    expect(await batch.progress()).toMatchObject({ total: 20, running: 0, completed: 0 });
  });

  it('an aborted signal cancels the batch and rejects map with its reason', async () => {
    const { supervisor } = await cluster();
    const controller = new AbortController();
    const inputs = Array.from({ length: 10 }, (_, n) => ({ n, ms: 30_000 }));
    const mapped = supervisor.map('failOrHold', inputs, { concurrency: 1, signal: controller.signal, id: 'sig' });
    await vi.waitFor(() => expect(live.size).toBe(1), { timeout: 10_000, interval: 20 });
    const reason = new Error('user left');
    controller.abort(reason);
    await expect(mapped).rejects.toBe(reason);
    await vi.waitFor(() => expect(live.get(0)?.aborted).toBeInstanceOf(TaskAbortedError), { timeout: 10_000 });
    const batch = await supervisor.getBatch('sig');
    await expect(batch!.await()).rejects.toBeInstanceOf(TaskAbortedError);
    expect(runs).toHaveLength(1);
  });

  it('the same id is the same batch: nothing is stored or run twice', async () => {
    const { supervisor, other, prefix } = await cluster();
    const inputs = Array.from({ length: 30 }, (_, i) => i);
    const [one, two] = await Promise.all([
      supervisor.batch<number, { n: number }>('double', inputs, { id: 'nightly' }),
      other.batch<number, { n: number }>('double', inputs, { id: 'nightly' }),
    ]);
    expect(one.id).toBe('nightly');
    expect(two.id).toBe('nightly');
    const values = await one.await(20_000);
    expect(values.map((v) => v.n)).toEqual(inputs.map((i) => i * 2));
    const again = await supervisor.batch<number, { n: number }>('double', inputs, { id: 'nightly' });
    expect((await again.await(5000)).map((v) => v.n)).toEqual(inputs.map((i) => i * 2));
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(runs).toHaveLength(30);
    expect(await redis.llen(`${prefix}:double:wait`)).toBe(0);
  });

  it('timeout applies per item: a late item fails with TaskTimeoutError, the others complete', async () => {
    const { supervisor } = await cluster();
    const outcomes = await supervisor.settle<number, number>('sleepy', [10, 5000, 20], { timeout: 500 });
    expect(outcomes[0]).toEqual({ status: 'fulfilled', value: 10, index: 0 });
    expect(outcomes[2]).toEqual({ status: 'fulfilled', value: 20, index: 2 });
    expect(outcomes[1]!.status).toBe('rejected');
    expect((outcomes[1] as { reason: unknown }).reason).toBeInstanceOf(TaskTimeoutError);
    await expect(supervisor.map('sleepy', [10, 5000], { timeout: 500 })).rejects.toBeInstanceOf(TaskTimeoutError);
  });

  it('refuses bad input before anything is stored', async () => {
    const { supervisor, prefix } = await cluster();
    await expect(supervisor.map('nope', [1])).rejects.toBeInstanceOf(UnknownTaskError);
    const notJson = supervisor.map('double', [1, 2, { when: 1n }]);
    await expect(notJson).rejects.toBeInstanceOf(InvalidPayloadError);
    await expect(supervisor.map('double', [1, 2, { when: 1n }])).rejects.toThrow(/inputs\[2\]\.when/);
    await expect(supervisor.map('double', [1], { concurrency: 0 })).rejects.toThrow(/"concurrency".*>= 1.*got 0/);
    await expect(supervisor.map('double', [1], { timeout: -1 })).rejects.toThrow(/"timeout"/);
    await expect(supervisor.map('double', [1], { id: '' })).rejects.toThrow(/"id"/);
    await expect(supervisor.map('double', [1], { bogus: 1 } as object)).rejects.toThrow(/unknown option "bogus"/);
    await expect(supervisor.map('double', 42 as never)).rejects.toThrow(/Iterable/);
    const function_ = () => undefined;
    await expect(supervisor.batch('double', [function_])).rejects.toThrow(/inputs\[0\]/);
    expect(await redis.keys(`${prefix}:*batch*`)).toEqual([]);
    expect(await redis.keys(`${prefix}:double:*`)).toEqual([]);
    expect(runs).toEqual([]);
  });

  it('results() yields outcomes in input order, or as they complete', async () => {
    const { supervisor } = await cluster();
    const batch = await supervisor.batch<number, number>('sleepy', [600, 10, 300]);
    const inOrder: number[] = [];
    const asCompleted: number[] = [];
    await Promise.all([
      (async () => {
        for await (const o of batch.results()) inOrder.push(o.index);
      })(),
      (async () => {
        for await (const o of batch.results({ ordered: false })) asCompleted.push(o.index);
      })(),
    ]);
    expect(inOrder).toEqual([0, 1, 2]);
    expect(asCompleted).toEqual([1, 2, 0]);
    expect(await batch.progress()).toEqual({ total: 3, completed: 3, failed: 0, running: 0, waiting: 0 });
  });

  it('takes hostile batch ids as they are: BullMQ key names, "#", ":" and unicode name distinct batches', async () => {
    const { supervisor, other } = await cluster();
    const ids = ['wait', 'meta', 'a#1', 'a', '../x:y#2', 'évé 🎉', 'stalled-check'];
    const batches = await Promise.all(
      ids.map((id, k) => supervisor.batch<number, { n: number }>('double', [k, k + 100], { id })),
    );
    for (const [k, batch] of batches.entries()) {
      expect(batch.id).toBe(ids[k]);
      expect((await batch.await(20_000)).map((v) => v.n)).toEqual([2 * k, 2 * (k + 100)]);
      expect((await other.getBatch(ids[k]!))!.task).toBe('double');
    }
    expect(runs).toHaveLength(ids.length * 2);
    expect(await supervisor.getBatch('never-started')).toBeUndefined();
  });

  it('a startChild() id "<batch id>#<n>" and item n of that batch are distinct jobs: both run, neither is a duplicate', async () => {
    const { supervisor } = await cluster();
    // Before the batch: the child holds the id first.
    const before = await supervisor.startChild('double', 1000, { id: 'c#0' });
    expect(before.duplicate).toBe(false);
    const batch = await supervisor.batch<number, { n: number }>('double', [0, 1], { id: 'c' });
    expect((await batch.await(20_000)).map((v) => v.n)).toEqual([0, 2]);
    // After the batch: its items hold nothing a child id can name.
    const after = await supervisor.startChild('double', 2000, { id: 'c#1' });
    expect(after.duplicate).toBe(false);
    await vi.waitFor(() => expect(runs.map((r) => r.n).sort((a, b) => a - b)).toEqual([0, 1, 1000, 2000]), {
      timeout: 20_000,
      interval: 20,
    });
  }, 60_000);

  it('a caller whose app closes while it waits gets a rejection, not a hang', async () => {
    const { supervisor } = await cluster();
    const mapped = supervisor.map('failOrHold', [{ n: 0, ms: 30_000 }]).catch((e: unknown) => e);
    await vi.waitFor(() => expect(live.size).toBe(1), { timeout: 10_000, interval: 20 });
    await apps.shift()!.app.close();
    expect(await mapped).toBeInstanceOf(Error);
  });

  it('terminateChild() of a waiting item ends it in its batch: settle() does not hang', async () => {
    const { supervisor } = await cluster();
    const batch = await supervisor.batch(
      'failOrHold',
      [
        { n: 0, ms: 1500 },
        { n: 1, ms: 10 },
      ],
      { concurrency: 1, id: 't' },
    );
    await vi.waitFor(() => expect(live.size).toBe(1), { timeout: 10_000, interval: 20 });
    expect(await supervisor.terminateChild('t#1', 'failOrHold')).toBe(true);
    const outcomes = await batch.settle(20_000);
    expect(outcomes[0]).toEqual({ status: 'fulfilled', value: 0, index: 0 });
    expect((outcomes[1] as { reason: unknown }).reason).toBeInstanceOf(TaskAbortedError);
    expect(runs).toHaveLength(1);
  });

  it('completes with every result when every Redis connection is killed mid-batch (CLIENT KILL)', async () => {
    const { supervisor } = await cluster();
    const inputs = Array.from({ length: 150 }, (_, n) => ({ n, ms: 20 }));
    const settled = supervisor.settle<object, number>('failOrHold', inputs, { concurrency: 6 });
    await vi.waitFor(() => expect(runs.length).toBeGreaterThan(20), { timeout: 20_000, interval: 10 });
    await redis.call('CLIENT', 'KILL', 'TYPE', 'normal');
    const outcomes = await settled;
    expect(outcomes.map((o) => (o.status === 'fulfilled' ? o.value : o.reason))).toEqual(inputs.map((i) => i.n));
  }, 60_000);
});
