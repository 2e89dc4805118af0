import diagnostics from 'node:diagnostics_channel';
import { Injectable } from '@nestjs/common';
import {
  type DurableTaskContext,
  DurableSupervisor,
  DurableUnavailableError,
  InvalidPayloadError,
  type SupervisorEvent,
  TaskHandler,
  TaskTimeoutError,
  UnknownTaskError,
} from 'nestjs-concurrency';
import { Queue } from 'bullmq';
import { toJobId } from '../../lib/durable/utils/job-id.util.js';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';
import { bootDurable, type DurableApp, uniquePrefix } from './helpers.js';

/** What the handlers saw, shared by the test and the providers (one app per instance). */
const seen: Array<{ task: string; payload: unknown; id: string; attempt: number; instance: string }> = [];
const gates = new Map<string, { release: () => void; promise: Promise<void> }>();
const gate = (key: string) => {
  let release!: () => void;
  const promise = new Promise<void>((resolve) => (release = resolve));
  gates.set(key, { release, promise });
  return release;
};

function handlersFor(instance: string) {
  @Injectable()
  class Handlers {
    @TaskHandler('echo', { restart: 'temporary' })
    echo(payload: { n: number }, ctx: DurableTaskContext) {
      seen.push({ task: 'echo', payload, id: ctx.id, attempt: ctx.attempt, instance });
      return { doubled: payload.n * 2, instance };
    }

    @TaskHandler('flaky', { maxRestarts: 2, backoff: 10 })
    flaky(payload: { failTimes: number }, ctx: DurableTaskContext) {
      seen.push({ task: 'flaky', payload, id: ctx.id, attempt: ctx.attempt, instance });
      if (ctx.attempt <= payload.failTimes) throw new Error(`boom ${ctx.attempt}`);
      return ctx.attempt;
    }

    @TaskHandler('once', { restart: 'temporary' })
    once(_payload: unknown, ctx: DurableTaskContext) {
      seen.push({ task: 'once', payload: null, id: ctx.id, attempt: ctx.attempt, instance });
      throw new Error('no second chance');
    }

    @TaskHandler('slow', { timeout: 200, maxRestarts: 1, backoff: 10 })
    async slow(_payload: unknown, ctx: DurableTaskContext) {
      seen.push({ task: 'slow', payload: null, id: ctx.id, attempt: ctx.attempt, instance });
      // Ignores its signal on purpose: the attempt must still fail at the timeout.
      await new Promise((resolve) => setTimeout(resolve, 60_000).unref());
    }

    @TaskHandler('held', { restart: 'temporary', concurrency: 1 })
    async held(payload: { key: string }, ctx: DurableTaskContext) {
      seen.push({ task: 'held', payload, id: ctx.id, attempt: ctx.attempt, instance });
      await ctx.progress(50);
      const held = gates.get(payload.key);
      await new Promise<void>((resolve, reject) => {
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true });
        if (held) void held.promise.then(resolve);
        else resolve(); // its gate is gone: the test has ended
      });
      return 'released';
    }

    @TaskHandler('hostile', { restart: 'temporary' })
    hostile(payload: { kind: string }) {
      if (payload.kind === 'symbol') throw Symbol('weird');
      if (payload.kind === 'null-proto') throw Object.create(null);
      throw {
        toString() {
          throw new Error('toString throws');
        },
      };
    }
  }
  return Handlers;
}

describe.skipIf(!redisAvailable)('durable tasks across two instances (real redis-server)', () => {
  let server: RedisServer;
  let api: DurableApp; // workers: false, an API-only node
  let worker: DurableApp;
  let apiSupervisor: DurableSupervisor;
  let prefix: string;

  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => {
    await server.stop();
  });
  beforeEach(async () => {
    seen.length = 0;
    prefix = uniquePrefix();
    api = await bootDurable({ connection: server.url, prefix, workers: false }, [handlersFor('api')]);
    worker = await bootDurable({ connection: server.url, prefix }, [handlersFor('worker')]);
    apiSupervisor = api.app.get(DurableSupervisor);
  });
  afterEach(async () => {
    for (const { release } of gates.values()) release();
    gates.clear();
    await Promise.all([api.app.close(), worker.app.close()]);
  });

  it('runs a task started on an API-only instance on the instance with workers, and returns its result', async () => {
    const task = await apiSupervisor.async<{ n: number }, { doubled: number; instance: string }>('echo', { n: 21 });
    expect(await task.await(10_000)).toEqual({ doubled: 42, instance: 'worker' });
    expect(seen).toEqual([{ task: 'echo', payload: { n: 21 }, id: task.id, attempt: 1, instance: 'worker' }]);
  });

  it('resolves startChild once the child is stored in Redis', async () => {
    const release = gate('stored');
    const ref = await apiSupervisor.startChild('held', { key: 'stored' });
    expect(ref.task).toBe('held');
    // Stored: visible from the other instance at once.
    const children = await worker.app.get(DurableSupervisor).children();
    expect(children.map((c) => c.id)).toContain(ref.id);
    release();
  });

  it('yields null while the task runs and its outcome once it has finished, on any instance', async () => {
    const release = gate('yield');
    const task = await apiSupervisor.async('held', { key: 'yield' });
    expect(await task.yield(200)).toBeNull();
    release();
    expect(await task.yield(10_000)).toEqual({ status: 'fulfilled', value: 'released' });
  });

  it('terminates the task when await() times out with { terminate: true }, as Task.await does', async () => {
    gate('await-timeout');
    const task = await apiSupervisor.async('held', { key: 'await-timeout' });
    await vi.waitFor(() => expect(seen.map((s) => s.id)).toContain(task.id), { timeout: 10_000 });
    await expect(task.await(300, { terminate: true })).rejects.toThrow(TaskTimeoutError);
    expect((await apiSupervisor.children()).map((c) => c.id)).not.toContain(task.id);
    expect(seen.filter((s) => s.id === task.id)).toHaveLength(1);
  });

  it('stores ctx.progress on the task, where BullMQ tools read it', async () => {
    const release = gate('progress');
    const ref = await apiSupervisor.startChild('held', { key: 'progress' });
    const queue = new Queue('held', { connection: { url: server.url }, prefix });
    try {
      await vi.waitFor(async () => expect((await queue.getJob(toJobId(ref.id)))?.progress).toBe(50), {
        timeout: 10_000,
      });
    } finally {
      release();
      await queue.close();
    }
  });

  it('restarts a transient task after failures, with ctx.attempt counting up, until it succeeds', async () => {
    const task = await apiSupervisor.async<{ failTimes: number }, number>('flaky', { failTimes: 2 });
    expect(await task.await(10_000)).toBe(3);
    expect(seen.filter((s) => s.id === task.id).map((s) => s.attempt)).toEqual([1, 2, 3]);
  });

  it('gives up after maxRestarts and rejects the awaiter with the last error', async () => {
    const task = await apiSupervisor.async('flaky', { failTimes: 10 });
    await expect(task.await(10_000)).rejects.toThrow('boom 3');
    expect(seen.filter((s) => s.id === task.id)).toHaveLength(3); // 1 + maxRestarts
  });

  it('runs a temporary task once, even when it fails', async () => {
    const task = await apiSupervisor.async('once', null);
    await expect(task.await(10_000)).rejects.toThrow('no second chance');
    expect(seen.filter((s) => s.id === task.id)).toHaveLength(1);
  });

  it('aborts ctx.signal at the timeout and fails the attempt, even if the handler ignores it', async () => {
    const started = Date.now();
    const task = await apiSupervisor.async('slow', null);
    await expect(task.await(10_000)).rejects.toThrow('did not finish within 200 ms');
    expect(seen.filter((s) => s.id === task.id).map((s) => s.attempt)).toEqual([1, 2]);
    expect(Date.now() - started).toBeLessThan(8000);
  });

  it('treats the same opts.id as the same child', async () => {
    const release = gate('idem');
    const first = await apiSupervisor.startChild('held', { key: 'idem' }, { id: 'order-17' });
    const second = await apiSupervisor.startChild('held', { key: 'idem' }, { id: 'order-17' });
    expect(second.id).toBe(first.id);
    release();
    const task = await apiSupervisor.async('held', { key: 'idem' }, { id: 'order-17' });
    expect(await task.await(10_000)).toBe('released');
    expect(seen.filter((s) => s.id === 'order-17')).toHaveLength(1);
  });

  it('waits out opts.delay before running', async () => {
    const started = Date.now();
    const task = await apiSupervisor.async('echo', { n: 1 }, { delay: 700 });
    expect((await apiSupervisor.children()).find((c) => c.id === task.id)?.status).toBe('delayed');
    await task.await(10_000);
    expect(Date.now() - started).toBeGreaterThanOrEqual(690);
  });

  it('runs waiting children by priority', async () => {
    const release = gate('prio');
    const blocker = await apiSupervisor.startChild('held', { key: 'prio' });
    await vi.waitFor(() => expect(seen.map((s) => s.id)).toContain(blocker.id), { timeout: 10_000 });
    gate('low');
    gate('high');
    await apiSupervisor.startChild('held', { key: 'low' }, { priority: 10 });
    await apiSupervisor.startChild('held', { key: 'high' }, { priority: 1 });
    release();
    await vi.waitFor(() => expect(seen).toHaveLength(2), { timeout: 10_000 });
    expect((seen[1].payload as { key: string }).key).toBe('high');
  });

  it('rejects an unknown task name on an instance with workers, and stores nothing', async () => {
    const supervisor = worker.app.get(DurableSupervisor);
    const error = await supervisor.startChild('echoo', { n: 1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnknownTaskError);
    expect((error as Error).message).toContain('"echoo"');
    expect((error as Error).message).toContain('"echo"');
    expect(await supervisor.children()).toEqual([]);
  });

  it.each([
    [{ user: { notify: () => {} } }, 'payload.user.notify', 'a function'],
    [{ ids: [1, 2n] }, 'payload.ids[1]', 'a BigInt'],
    [{ tags: new Set(['a']) }, 'payload.tags', 'a Set'],
    [{ score: NaN }, 'payload.score', 'NaN'],
  ])('rejects a payload JSON cannot carry, naming its path, and stores nothing (%#)', async (payload, path, what) => {
    const error = (await apiSupervisor.startChild('echo', payload).catch((e: unknown) => e)) as InvalidPayloadError;
    expect(error).toBeInstanceOf(InvalidPayloadError);
    expect(error.path).toBe(path);
    expect(error.message).toContain(what);
    expect(await apiSupervisor.children()).toEqual([]);
  });

  it('names the path of a cycle', async () => {
    const payload: Record<string, unknown> = { a: { b: {} } };
    (payload.a as { b: Record<string, unknown> }).b.back = payload;
    const error = (await apiSupervisor.startChild('echo', payload).catch((e: unknown) => e)) as InvalidPayloadError;
    expect(error.path).toBe('payload.a.b.back');
    expect(error.message).toContain('circular');
  });

  it('lists waiting and running children of the whole cluster, and their progress does not stop them', async () => {
    const release = gate('list');
    const running = await apiSupervisor.startChild('held', { key: 'list' });
    await vi.waitFor(() => expect(seen.map((s) => s.id)).toContain(running.id), { timeout: 10_000 });
    const waiting = await apiSupervisor.startChild('held', { key: 'list' });
    const children = await apiSupervisor.children();
    expect(children).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ id: running.id, task: 'held', status: 'running', attempt: 1 }),
        expect.objectContaining({ id: waiting.id, task: 'held', status: 'waiting', attempt: 1 }),
      ]),
    );
    expect(children.find((c) => c.id === running.id)?.startedAt).toBeInstanceOf(Date);
    release();
  });

  it('terminates a waiting child by removing it: it never runs', async () => {
    const release = gate('term-wait');
    const blocker = await apiSupervisor.startChild('held', { key: 'term-wait' });
    await vi.waitFor(() => expect(seen.map((s) => s.id)).toContain(blocker.id), { timeout: 10_000 });
    const waiting = await apiSupervisor.startChild('held', { key: 'term-wait' });
    expect(await apiSupervisor.terminateChild(waiting.id)).toBe(true);
    release();
    const next = await apiSupervisor.async('echo', { n: 0 });
    await next.await(10_000);
    expect(seen.map((s) => s.id)).not.toContain(waiting.id);
    expect((await apiSupervisor.children()).map((c) => c.id)).not.toContain(waiting.id);
  });

  it('terminates a running child on the instance that runs it: its ctx.signal aborts, no restart', async () => {
    gate('term-run');
    const task = await apiSupervisor.async('held', { key: 'term-run' });
    await vi.waitFor(() => expect(seen.map((s) => s.id)).toContain(task.id), { timeout: 10_000 });
    expect(await apiSupervisor.terminateChild(task.id)).toBe(true);
    await expect(task.await(10_000)).rejects.toThrow('was aborted (terminated)');
    expect(seen.filter((s) => s.id === task.id)).toHaveLength(1);
    expect(await apiSupervisor.terminateChild(task.id)).toBe(false);
  });

  it('streams the events of the cluster to an instance without workers', async () => {
    const events: SupervisorEvent[] = [];
    const subscription = apiSupervisor.events.subscribe((e) => events.push(e));
    // The listeners connect on first subscription: wait until a probe's completion is seen.
    await vi.waitFor(
      async () => {
        const probe = await apiSupervisor.async('echo', { n: 0 });
        await probe.await(5000);
        await vi.waitFor(() => expect(events.some((e) => e.childId === probe.id && e.type === 'completed')).toBe(true));
      },
      { timeout: 15_000 },
    );
    const ok = await apiSupervisor.async('echo', { n: 1 });
    const bad = await apiSupervisor.async('flaky', { failTimes: 10 });
    await ok.await(10_000);
    await bad.await(10_000).catch(() => undefined);
    await vi.waitFor(
      () => expect(events.filter((e) => e.childId === bad.id).map((e) => e.type)).toContain('max-restarts'),
      { timeout: 10_000 },
    );
    subscription.unsubscribe();
    expect(events.filter((e) => e.childId === ok.id).map((e) => e.type)).toEqual(['started', 'completed']);
    expect(events.filter((e) => e.childId === bad.id).map((e) => `${e.type}:${e.attempt}`)).toEqual([
      'started:1',
      'failed:1',
      'restarted:2',
      'started:2',
      'failed:2',
      'restarted:3',
      'started:3',
      'failed:3',
      'max-restarts:3',
    ]);
    const failed = events.find((e) => e.childId === bad.id && e.type === 'failed');
    expect(failed).toMatchObject({ supervisor: 'durable', name: 'flaky' });
    expect((failed!.error as Error).message).toBe('boom 1');
  });

  it('publishes the attempts run on this instance on the nestjs-concurrency:durable diagnostics channel', async () => {
    const messages: SupervisorEvent[] = [];
    const listener = (message: unknown) => messages.push(message as SupervisorEvent);
    diagnostics.subscribe('nestjs-concurrency:durable', listener);
    try {
      const task = await apiSupervisor.async('flaky', { failTimes: 1 });
      await task.await(10_000);
      const mine = messages.filter((m) => m.childId === task.id);
      expect(mine.map((m) => `${m.type}:${m.attempt}`)).toEqual([
        'started:1',
        'failed:1',
        'restarted:2',
        'started:2',
        'completed:2',
      ]);
      expect(mine[1]).toMatchObject({ supervisor: 'durable', name: 'flaky' });
      expect((mine[1].error as Error).message).toBe('boom 1');
      expect(mine[4].durationMs).toEqual(expect.any(Number));
    } finally {
      diagnostics.unsubscribe('nestjs-concurrency:durable', listener);
    }
  });

  it.each(['symbol', 'null-proto', 'throwing-toString'])(
    'logs a handler that throws a %s with its task name, never an unhandled rejection',
    async (kind) => {
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown) => unhandled.push(reason);
      process.on('unhandledRejection', onUnhandled);
      try {
        const task = await apiSupervisor.async('hostile', { kind });
        await expect(task.await(10_000)).rejects.toThrow('failed');
        expect(worker.logger.text('error')).toContain('Durable task "hostile"');
      } finally {
        process.off('unhandledRejection', onUnhandled);
      }
      expect(unhandled).toEqual([]);
    },
  );

  it('resumes running tasks when Redis comes back after an outage', async () => {
    await server.stop();
    await server.restart();
    // The workers reconnect by themselves; a start may fail until the producer has reconnected too.
    const task = await vi.waitFor(() => apiSupervisor.async('echo', { n: 5 }), { timeout: 15_000, interval: 200 });
    expect(await task.await(15_000)).toEqual({ doubled: 10, instance: 'worker' });
  });

  it('closes an instance with workers within a bounded time while Redis is down', async () => {
    const prefix = uniquePrefix();
    const extra = await bootDurable({ connection: server.url, prefix }, [handlersFor('extra')], {
      shutdownTimeout: 500,
    });
    await extra.app
      .get(DurableSupervisor)
      .async('echo', { n: 1 })
      .then((t) => t.await(10_000));
    extra.app.get(DurableSupervisor).events.subscribe(() => undefined);
    await server.stop();
    try {
      const closing = Date.now();
      await extra.app.close();
      expect(Date.now() - closing).toBeLessThan(8000);
    } finally {
      await server.restart();
    }
  });

  it('rejects startChild within storeTimeout while Redis is down, then works again when it is back', async () => {
    const prefix = uniquePrefix();
    const producer = await bootDurable({ connection: server.url, prefix, workers: false, storeTimeout: 500 }, []);
    const supervisor = producer.app.get(DurableSupervisor);
    await supervisor.startChild('anything', { n: 1 });
    await server.stop();
    try {
      const started = Date.now();
      const error = await supervisor.startChild('anything', { n: 2 }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DurableUnavailableError);
      const message = (error as Error).message;
      if (message.includes('command was not sent')) {
        // The client had already seen the connection go (refused reconnects): nothing was sent, so nothing stored.
        expect(message).toContain('was not stored');
        expect(message).toContain('could not reach Redis');
      } else {
        // Sent before the client noticed: it may have been stored (the answer lost). The message must not say
        // otherwise, and says how to be sure.
        expect(message).toContain('storeTimeout');
        expect(message).toContain('may have been stored');
        expect(message).toContain('same opts.id');
        expect(message).not.toContain('Nothing was started');
      }
      expect(Date.now() - started).toBeLessThan(2000);
      // The other calls say what they were doing, not that a task was not stored.
      const listing = await supervisor.children().catch((e: unknown) => e);
      expect(listing).toBeInstanceOf(DurableUnavailableError);
      expect((listing as Error).message).toContain('Cannot list the durable children');
      expect((listing as Error).message).not.toContain('stored');
      const terminating = await supervisor.terminateChild('some-id').catch((e: unknown) => e);
      expect((terminating as Error).message).toContain('Cannot terminate the durable child');
    } finally {
      await server.restart();
    }
    await vi.waitFor(() => supervisor.startChild('anything', { n: 3 }), { timeout: 15_000, interval: 200 });
    await producer.app.close();
  });
});
