import { Injectable } from '@nestjs/common';
import { Redis } from 'ioredis';
import {
  type DurableTaskContext,
  DurableSupervisor,
  DurableUnavailableError,
  InvalidPayloadError,
  TaskHandler,
} from 'nestjs-concurrency';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';
import { bootDurable, type DurableApp, uniquePrefix } from './helpers.js';

/** Ids each handler saw, in order. */
const runs: Array<{ task: string; id: string; payload: unknown }> = [];
const releases = new Set<() => void>();

@Injectable()
class Handlers {
  @TaskHandler('work', { restart: 'temporary' })
  work(payload: unknown, ctx: DurableTaskContext) {
    runs.push({ task: 'work', id: ctx.id, payload });
    return { ok: true };
  }

  @TaskHandler('other', { restart: 'temporary' })
  other(payload: unknown, ctx: DurableTaskContext) {
    runs.push({ task: 'other', id: ctx.id, payload });
    return 'other';
  }

  @TaskHandler('proxy', { restart: 'temporary' })
  proxy() {
    throw new Proxy(
      {},
      {
        getPrototypeOf() {
          throw new Error('trap');
        },
      },
    );
  }

  /** Held until its signal aborts or the test releases it. */
  @TaskHandler('held', { restart: 'temporary', concurrency: 1 })
  async held(payload: unknown, ctx: DurableTaskContext) {
    runs.push({ task: 'held', id: ctx.id, payload });
    await new Promise<void>((resolve) => {
      releases.add(resolve);
      ctx.signal.addEventListener('abort', () => resolve());
    });
    return 'released';
  }

  /** Returns what the payload asks for: a value JSON would change or refuse. */
  @TaskHandler('returns', { maxRestarts: 2, backoff: 10 })
  returns(payload: { kind: string }, ctx: DurableTaskContext) {
    runs.push({ task: 'returns', id: ctx.id, payload });
    if (payload.kind === 'toJSON-throws') {
      return {
        toJSON() {
          throw new Error('toJSON exploded');
        },
      };
    }
    if (payload.kind === 'error') return { error: new Error('lost') };
    if (payload.kind === 'big') return 'x'.repeat(300_000);
    return 'fine';
  }
}

describe.skipIf(!redisAvailable)('durable tasks: hostile ids, dedup window, payload and result checks', () => {
  let server: RedisServer;
  let app: DurableApp;
  let supervisor: DurableSupervisor;
  let prefix: string;

  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => {
    await server.stop();
  });
  beforeEach(async () => {
    runs.length = 0;
    prefix = uniquePrefix();
  });
  afterEach(async () => {
    for (const release of releases) release();
    releases.clear();
    await app?.app.close();
  });

  const boot = async (extra: object = {}) => {
    app = await bootDurable({ connection: server.url, prefix, ...extra }, [Handlers]);
    supervisor = app.app.get(DurableSupervisor);
  };

  it("takes any string as an idempotency key: BullMQ's own key names do not touch the queue's keys", async () => {
    await boot();
    const hostile = [
      'wait',
      'marker',
      'active',
      'delayed',
      'stalled',
      'completed',
      'meta',
      'id',
      'stalled-check',
      'events',
      'failed',
      'paused',
      'prioritized',
      'pc',
      'limiter',
      'a:b',
      '42',
      'ünï code',
    ];
    for (const id of hostile) {
      const task = await supervisor.async('work', { id }, { id });
      expect(task.id).toBe(id);
      expect(await task.await(10_000)).toEqual({ ok: true });
    }
    // The task name still works after all of them, and each ran once under the caller's id.
    expect(await (await supervisor.async('work', { id: 'after' })).await(10_000)).toEqual({ ok: true });
    expect(runs.filter((r) => r.task === 'work').map((r) => r.id)).toEqual([...hostile, expect.any(String)]);
    // The same key starts nothing new.
    const again = await supervisor.startChild('work', { id: 'wait' }, { id: 'wait' });
    expect(again).toEqual({ id: 'wait', task: 'work', duplicate: true });
  }, 60_000);

  it('keeps the idempotency record for its own lifetime, independent of the retention of finished tasks', async () => {
    await boot({ retention: { completed: { count: 1 } } });
    const first = await supervisor.startChild('work', { n: 1 }, { id: 'order-1' });
    expect(first.duplicate).toBe(false);
    await vi.waitFor(() => expect(runs).toHaveLength(1), { timeout: 10_000 });
    // Newer completions push order-1 out of the kept finished tasks.
    for (let i = 0; i < 3; i++) await (await supervisor.async('work', { n: i + 2 })).await(10_000);
    const again = await supervisor.startChild('work', { n: 1 }, { id: 'order-1' });
    expect(again.duplicate).toBe(true);
    await (await supervisor.async('work', { n: 9 })).await(10_000);
    expect(runs.filter((r) => r.id === 'order-1')).toHaveLength(1);
    // The record has the documented lifetime (24 h by default).
    const redis = new Redis(server.url);
    try {
      const keys = await redis.keys(`${prefix}:*idem*`);
      expect(keys).toHaveLength(1);
      const ttl = await redis.pttl(keys[0]!);
      expect(ttl).toBeGreaterThan(23 * 3600_000);
      expect(ttl).toBeLessThanOrEqual(24 * 3600_000);
    } finally {
      redis.disconnect();
    }
  }, 60_000);

  it('refuses a payload whose toJSON throws or returns a BigInt as an invalid payload, not as a Redis error', async () => {
    await boot();
    const throwing = {
      a: {
        toJSON: () => {
          throw new Error('nope');
        },
      },
    };
    const bigint = { a: { toJSON: () => 10n } };
    for (const payload of [throwing, bigint]) {
      const error = await supervisor.startChild('work', payload).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidPayloadError);
      expect(error).not.toBeInstanceOf(DurableUnavailableError);
      expect((error as InvalidPayloadError).path).toBe('payload.a');
    }
  });

  it('refuses what JSON would silently change: Error, undefined array items, symbol keys, typed arrays', async () => {
    await boot();
    const cases: Array<[unknown, string]> = [
      [{ e: new Error('x') }, 'payload.e'],
      [{ list: [1, undefined] }, 'payload.list[1]'],
      [{ [Symbol('s')]: 1, a: 1 }, 'payload'],
      [{ bytes: new Uint8Array([1, 2]) }, 'payload.bytes'],
    ];
    for (const [payload, path] of cases) {
      const error = await supervisor.startChild('work', payload).catch((e: unknown) => e);
      expect(error, path).toBeInstanceOf(InvalidPayloadError);
      expect((error as InvalidPayloadError).path).toBe(path);
    }
    expect(await supervisor.children()).toEqual([]);
  });

  it('starts with an undefined payload (the handler receives null)', async () => {
    await boot();
    expect(await (await supervisor.async('work', undefined)).await(10_000)).toEqual({ ok: true });
    expect(runs[0]!.payload).toBeNull();
  });

  it('refuses a payload over durable.maxPayloadSize naming its size and the limit, storing nothing', async () => {
    await boot({ maxPayloadSize: 100_000 });
    const error = await supervisor.startChild('work', { blob: 'x'.repeat(200_000) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidPayloadError);
    expect((error as Error).message).toContain('200,011 bytes');
    expect((error as Error).message).toContain('durable.maxPayloadSize (100,000 bytes)');
    expect(await supervisor.children()).toEqual([]);
  });

  it('fails a result JSON cannot carry once, for good, with a message naming the result', async () => {
    await boot({ maxPayloadSize: 100_000 });
    for (const [kind, text] of [
      ['toJSON-throws', 'toJSON exploded'],
      ['error', 'result.error'],
      ['big', 'maxPayloadSize'],
    ]) {
      const task = await supervisor.async('returns', { kind });
      await expect(task.await(10_000)).rejects.toThrow(text);
      expect(runs.filter((r) => r.id === task.id)).toHaveLength(1);
    }
  }, 60_000);

  it('logs a thrown Proxy whose traps throw, with its task name', async () => {
    await boot();
    const task = await supervisor.async('proxy', null);
    await expect(task.await(10_000)).rejects.toThrow('failed');
    expect(app.logger.text('error')).toContain('Durable task "proxy"');
  });

  it('does not terminate the task when await() times out, unless asked to', async () => {
    await boot();
    const first = await supervisor.async('held', { n: 1 });
    const queued = await supervisor.async('held', { n: 2 }); // waits behind the first (concurrency 1)
    await vi.waitFor(() => expect(runs).toHaveLength(1), { timeout: 10_000 });
    await expect(queued.await(200)).rejects.toThrow('did not finish within 200 ms');
    expect((await supervisor.children()).map((c) => c.id)).toContain(queued.id);
    await expect(first.await(200, { terminate: true })).rejects.toThrow('did not finish within 200 ms');
    // The first was terminated: the queued one runs now, to completion.
    await vi.waitFor(() => expect(runs.map((r) => r.id)).toContain(queued.id), { timeout: 10_000 });
    for (const release of releases) release();
    expect(await queued.await(10_000)).toBe('released');
  });

  it('refuses to terminate an id that names children of two task names, naming both', async () => {
    await boot();
    await supervisor.startChild('held', { n: 1 }, { id: 'shared' });
    await supervisor.startChild('held', { n: 2 }, { id: 'other' });
    await supervisor.startChild('work', { n: 3 }, { id: 'shared', delay: 60_000 });
    const error = await supervisor.terminateChild('shared').catch((e: unknown) => e);
    expect((error as Error).message).toContain('"held"');
    expect((error as Error).message).toContain('"work"');
    expect(await supervisor.terminateChild('shared', 'work')).toBe(true);
    expect((await supervisor.children()).map((c) => `${c.task}:${c.id}`).sort()).toEqual(['held:other', 'held:shared']);
  });
});
