import { Injectable } from '@nestjs/common';
import { Redis } from 'ioredis';
import { type DurableTaskContext, DurableSupervisor, TaskHandler } from 'nestjs-concurrency';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';
import { bootDurable, type DurableApp, uniquePrefix } from './helpers.js';

const held = new Set<() => void>();

@Injectable()
class Handlers {
  @TaskHandler('quick', { restart: 'temporary' })
  quick(payload: { n: number }) {
    return payload.n + 1;
  }

  /** Runs until its signal aborts. */
  @TaskHandler('hold', { restart: 'temporary' })
  async hold(_payload: unknown, ctx: DurableTaskContext) {
    await new Promise<void>((resolve) => {
      held.add(resolve);
      ctx.signal.addEventListener('abort', () => resolve());
    });
    return 'released';
  }
}

describe.skipIf(!redisAvailable)('durable tasks: recovery after outages and data loss (real redis-server)', () => {
  let server: RedisServer;
  const apps: DurableApp[] = [];

  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => {
    await server.stop();
  });
  afterEach(async () => {
    for (const release of held) release();
    held.clear();
    await Promise.all(apps.splice(0).map((a) => a.app.close()));
  });

  const boot = async (...args: Parameters<typeof bootDurable>) => {
    const app = await bootDurable(...args);
    apps.push(app);
    return app;
  };

  it('starts and runs tasks again within a few seconds after a long outage ends (capped reconnect backoff)', async () => {
    const prefix = uniquePrefix();
    const api = await boot({ connection: server.url, prefix, workers: false, storeTimeout: 500 }, [Handlers]);
    await boot({ connection: server.url, prefix }, [Handlers]);
    const supervisor = api.app.get(DurableSupervisor);
    expect(await (await supervisor.async('quick', { n: 1 })).await(10_000)).toBe(2);
    await server.stop();
    // Long enough for BullMQ's default backoff (e^attempt, 1 s to 20 s) to reach 20 s between attempts.
    await new Promise((resolve) => setTimeout(resolve, 20_000));
    await server.restart();
    const back = Date.now();
    const task = await vi.waitFor(() => supervisor.async('quick', { n: 2 }), { timeout: 30_000, interval: 100 });
    expect(await task.await(30_000)).toBe(3);
    // Reconnect attempts are at most about 1 s apart: started and run well within 5 s on a loaded machine.
    expect(Date.now() - back).toBeLessThan(5000);
  }, 90_000);

  it('closes within storeTimeout-ish bounds while Redis is down when nothing runs, not after shutdownTimeout', async () => {
    const prefix = uniquePrefix();
    const app = await boot({ connection: server.url, prefix, storeTimeout: 500 }, [Handlers], {
      shutdownTimeout: 5000,
    });
    const supervisor = app.app.get(DurableSupervisor);
    expect(await (await supervisor.async('quick', { n: 1 })).await(10_000)).toBe(2);
    supervisor.events.subscribe(() => undefined);
    await server.stop();
    // The connections are reconnecting when the close begins, as in a real outage.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    try {
      const closing = Date.now();
      await app.app.close();
      apps.splice(apps.indexOf(app), 1);
      // Nothing to hand back: no wait for shutdownTimeout (5 s); the connections are cut.
      expect(Date.now() - closing).toBeLessThan(2500);
    } finally {
      await server.restart();
    }
  }, 60_000);

  it('closes within shutdownTimeout + storeTimeout + 1 s while Redis is down with handlers running', async () => {
    const prefix = uniquePrefix();
    const app = await boot({ connection: server.url, prefix, storeTimeout: 500 }, [Handlers], {
      shutdownTimeout: 2000,
    });
    const supervisor = app.app.get(DurableSupervisor);
    for (let i = 0; i < 5; i++) await supervisor.startChild('hold', null);
    await vi.waitFor(() => expect(held.size).toBe(5), { timeout: 10_000 });
    // The handlers ignore shutdown until aborted: the drain waits shutdownTimeout, then hands back (Redis is away).
    for (const release of held) held.delete(release);
    supervisor.events.subscribe(() => undefined);
    await server.stop();
    await new Promise((resolve) => setTimeout(resolve, 3000));
    try {
      const closing = Date.now();
      await app.app.close();
      apps.splice(apps.indexOf(app), 1);
      expect(Date.now() - closing).toBeLessThan(2000 + 500 + 1000 + 1000);
    } finally {
      await server.restart();
    }
  }, 60_000);

  it('lists the task names again after Redis lost its data (FLUSHALL)', async () => {
    const prefix = uniquePrefix();
    const api = await boot({ connection: server.url, prefix, workers: false }, []);
    await boot({ connection: server.url, prefix }, [Handlers]);
    const supervisor = api.app.get(DurableSupervisor);
    await supervisor.startChild('hold', null);
    await vi.waitFor(() => expect(held.size).toBe(1), { timeout: 10_000 });
    const redis = new Redis(server.url);
    try {
      await redis.flushall();
    } finally {
      redis.disconnect();
    }
    const ref = await supervisor.startChild('hold', null);
    // Another instance, which never started nor handles that task name, reads the names from Redis.
    const other = (await boot({ connection: server.url, prefix, workers: false }, [])).app.get(DurableSupervisor);
    await vi.waitFor(async () => expect((await other.children()).map((c) => c.id)).toContain(ref.id), {
      timeout: 10_000,
    });
  }, 60_000);
});
