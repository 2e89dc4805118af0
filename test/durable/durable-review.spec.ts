import { Injectable } from '@nestjs/common';
import { Job } from 'bullmq';
import { Redis } from 'ioredis';
import {
  type DurableTaskContext,
  DurableSupervisor,
  DurableUnavailableError,
  type SupervisorEvent,
  SupervisorShutdownError,
  TaskHandler,
} from 'nestjs-concurrency';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';
import { bootDurable, type DurableApp, uniquePrefix } from './helpers.js';

const held = new Set<() => void>();

/** When set, BullMQ's QueueEvents constructor throws (as BullMQ 6.7 does for a connection it refuses). */
const refuse = vi.hoisted(() => ({ queueEvents: false }));
vi.mock('bullmq', async (importOriginal) => {
  const bullmq = await importOriginal<typeof import('bullmq')>();
  class QueueEvents extends bullmq.QueueEvents {
    constructor(...args: ConstructorParameters<typeof bullmq.QueueEvents>) {
      if (refuse.queueEvents) throw new Error('BullMQ: Your redis options maxRetriesPerRequest must be null.');
      super(...args);
    }
  }
  // The module is a provider's value: Nest looks for lifecycle hooks on it (a mock throws on a missing name).
  const hooks = ['onModuleInit', 'onApplicationBootstrap', 'onModuleDestroy', 'beforeApplicationShutdown'];
  return {
    ...bullmq,
    QueueEvents,
    ...Object.fromEntries([...hooks, 'onApplicationShutdown'].map((h) => [h, undefined])),
  };
});

@Injectable()
class Handlers {
  @TaskHandler('double', { restart: 'temporary' })
  double(payload: { n: number }) {
    return payload.n * 2;
  }

  @TaskHandler('report', { restart: 'temporary' })
  async report(_payload: unknown, ctx: DurableTaskContext) {
    try {
      await ctx.progress(50);
      return 'stored';
    } catch (error) {
      return error instanceof DurableUnavailableError ? `unavailable: ${error.message}` : 'other';
    }
  }

  /** Runs until its signal aborts (the app closing) or the test releases it. */
  @TaskHandler('hold', { restart: 'temporary' })
  async hold(_payload: unknown, ctx: DurableTaskContext) {
    await new Promise<void>((resolve) => {
      held.add(resolve);
      ctx.signal.addEventListener('abort', () => resolve());
    });
    return 'released';
  }
}

describe.skipIf(!redisAvailable)('durable: review fixes (real redis-server)', () => {
  let server: RedisServer;
  const apps: DurableApp[] = [];
  const clients: Redis[] = [];
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => {
    await server.stop();
  });
  beforeEach(() => {
    unhandled.length = 0;
    process.on('unhandledRejection', onUnhandled);
  });
  afterEach(async () => {
    refuse.queueEvents = false;
    for (const release of held) release();
    held.clear();
    await Promise.all(apps.splice(0).map(({ app }) => app.close()));
    for (const client of clients.splice(0)) client.disconnect();
    process.off('unhandledRejection', onUnhandled);
  });

  it('takes an ioredis client as durable.connection: runs tasks, streams events, no unhandled rejection', async () => {
    // ioredis defaults to maxRetriesPerRequest: 20, which BullMQ refuses for a worker or QueueEvents connection.
    const client = new Redis(server.url);
    clients.push(client);
    const a = await bootDurable({ connection: client, prefix: uniquePrefix() }, [Handlers]);
    apps.push(a);
    const durable = a.app.get(DurableSupervisor);
    const events: SupervisorEvent[] = [];
    const subscription = durable.events.subscribe((event) => events.push(event));
    try {
      await new Promise((resolve) => setTimeout(resolve, 200));
      const task = await durable.async<{ n: number }, number>('double', { n: 21 });
      await expect(task.await(5000)).resolves.toBe(42);
      await vi.waitFor(() => expect(events.map((e) => e.type)).toContain('completed'), { timeout: 3000 });
      expect(unhandled).toEqual([]);
      expect(a.logger.text('error')).not.toContain('maxRetriesPerRequest');
      // The client stays the application's: still open and usable.
      await expect(client.ping()).resolves.toBe('PONG');
    } finally {
      subscription.unsubscribe();
    }
  });

  it('never fails a stored startChild, nor rejects unhandled, when BullMQ refuses to watch events', async () => {
    refuse.queueEvents = true;
    const a = await bootDurable({ connection: server.url, prefix: uniquePrefix(), workers: false });
    apps.push(a);
    const durable = a.app.get(DurableSupervisor);
    // Known before anyone listens: the first subscription watches it (watchAll).
    await durable.startChild('t1', null);
    const subscription = durable.events.subscribe(() => undefined);
    try {
      // Started while someone listens: register() watches it at once, after the child was stored.
      const ref = await durable.startChild('t2', { n: 1 });
      expect(ref.task).toBe('t2');
      expect((await durable.children()).map((c) => c.id)).toContain(ref.id);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(unhandled).toEqual([]);
      expect(a.logger.text('error')).toContain('maxRetriesPerRequest must be null');
    } finally {
      subscription.unsubscribe();
    }
  });

  it('terminateChild gives up at its deadline, pacing its tries, when removing a waiting child keeps failing', async () => {
    const a = await bootDurable(
      { connection: server.url, prefix: uniquePrefix(), workers: false, stalledTimeout: 1000, storeTimeout: 500 },
      [],
    );
    apps.push(a);
    const durable = a.app.get(DurableSupervisor);
    const { id } = await durable.startChild('later', null, { delay: 60_000 });
    const remove = vi.spyOn(Job.prototype, 'remove').mockRejectedValue(new Error('Job is locked'));
    try {
      const started = Date.now();
      const result = await Promise.race([
        durable.terminateChild(id),
        new Promise((resolve) => setTimeout(() => resolve('still spinning'), 5000)),
      ]);
      expect(result).toBe(false);
      expect(Date.now() - started).toBeLessThan(3000);
      // One try per 20 ms at most over the 1.5 s deadline, not one per Redis round trip.
      expect(remove.mock.calls.length).toBeLessThan(150);
    } finally {
      remove.mockRestore();
    }
  });

  it('bounds ctx.progress() by storeTimeout: a Redis that does not answer cannot hang the handler', async () => {
    const a = await bootDurable({ connection: server.url, prefix: uniquePrefix(), storeTimeout: 300 }, [Handlers]);
    apps.push(a);
    const durable = a.app.get(DurableSupervisor);
    const update = vi.spyOn(Job.prototype, 'updateProgress').mockReturnValue(new Promise<void>(() => undefined));
    try {
      const task = await durable.async<null, string>('report', null);
      const result = await task.await(3000);
      expect(result).toContain('unavailable: Cannot store the progress of durable task "report"');
      expect(result).toContain('300 ms');
    } finally {
      update.mockRestore();
    }
  });

  it('closes the QueueEvents connections once the last events subscriber and awaiter are gone', async () => {
    const admin = new Redis(server.url);
    clients.push(admin);
    // QueueEvents hold a blocking XREAD each; nothing else of this app does.
    const readers = async () =>
      ((await admin.client('LIST')) as string).split('\n').filter((line) => line.includes('cmd=xread')).length;
    const baseline = await readers();
    const a = await bootDurable({ connection: server.url, prefix: uniquePrefix(), workers: false }, []);
    apps.push(a);
    const durable = a.app.get(DurableSupervisor);
    const task = await durable.async('watched', null, { delay: 60_000 });
    const first = durable.events.subscribe(() => undefined);
    const second = durable.events.subscribe(() => undefined);
    await vi.waitFor(async () => expect(await readers()).toBe(baseline + 1), { timeout: 5000 });
    first.unsubscribe();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await readers()).toBe(baseline + 1); // one subscriber left
    second.unsubscribe();
    await vi.waitFor(async () => expect(await readers()).toBe(baseline), { timeout: 5000 });
    // An awaiter opens it for as long as it waits.
    await expect(task.yield(200)).resolves.toBeNull();
    await vi.waitFor(async () => expect(await readers()).toBe(baseline), { timeout: 5000 });
  });

  it('settles a pending await() when the app closes, instead of polling a closed queue for ever', async () => {
    const a = await bootDurable({ connection: server.url, prefix: uniquePrefix() }, [Handlers], {
      shutdownTimeout: 100,
    });
    const durable = a.app.get(DurableSupervisor);
    const task = await durable.async('hold', null);
    const settled = task.await(Infinity).then(
      () => 'resolved',
      (error: unknown) => error,
    );
    await vi.waitFor(() => expect(held.size).toBe(1), { timeout: 3000 });
    await a.app.close();
    const result = await Promise.race([settled, new Promise((resolve) => setTimeout(() => resolve('hung'), 3000))]);
    expect(result).toBeInstanceOf(SupervisorShutdownError);
    expect((result as Error).message).toContain('shutting down');
    expect((result as Error).message).toContain(task.id);
    expect(unhandled).toEqual([]);
  });
});
