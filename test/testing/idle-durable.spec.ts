import { Injectable } from '@nestjs/common';
import { Redis } from 'ioredis';
import { type DurableTaskContext, DurableSupervisor, TaskHandler } from 'nestjs-concurrency';
import { uniquePrefix } from '../durable/helpers.js';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';
import { bootKit, deferred } from './helpers.js';

/** What the handler let through, and the gate a test opens when it says so. */
const finished: number[] = [];
let gate = deferred();

@Injectable()
class Exports {
  @TaskHandler('export', { restart: 'temporary' })
  async export(payload: { n: number }, ctx: DurableTaskContext): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true });
      void gate.promise.then(resolve);
    });
    finished.push(payload.n);
    return payload.n;
  }
}

/** Fails its first two attempts, then succeeds; `doomed` fails every attempt (none restarted). */
@Injectable()
class Flaky {
  @TaskHandler('flaky', { restart: 'transient', maxRestarts: 3, backoff: 10 })
  flaky(_payload: null, ctx: DurableTaskContext): string {
    if (ctx.attempt <= 2) throw new Error(`flaky attempt ${ctx.attempt}`);
    return 'ok';
  }

  @TaskHandler('doomed', { restart: 'temporary' })
  doomed(): never {
    throw new TypeError('doomed for good');
  }
}

describe.skipIf(!redisAvailable)('ConcurrencyTester.idle() and durable tasks (real redis-server)', () => {
  let server: RedisServer;

  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => {
    await server?.stop();
  });
  beforeEach(() => {
    finished.length = 0;
    gate = deferred();
  });

  it('waits for a durable task started from this app until it has finished, and names it while it runs', async () => {
    const { app, tester } = await bootKit([Exports], { durable: { connection: server.url, prefix: uniquePrefix() } });
    try {
      const durable = app.get(DurableSupervisor);
      const ref = await durable.startChild('export', { n: 7 });
      // Not finished: idle() names it when its timeout passes.
      await expect(tester.idle(300)).rejects.toThrow(new RegExp(`durable task "export" \\(${ref.id}\\)`));
      gate.resolve();
      await tester.idle(10_000);
      expect(finished).toEqual([7]);
    } finally {
      gate.resolve();
      await app.close();
    }
  });

  it('resolves at once when the durable tasks started from this app have all finished', async () => {
    gate.resolve();
    const { app, tester } = await bootKit([Exports], { durable: { connection: server.url, prefix: uniquePrefix() } });
    try {
      const task = await app.get(DurableSupervisor).async('export', { n: 1 });
      await expect(task.await(10_000)).resolves.toBe(1);
      await expect(tester.idle(1000)).resolves.toBeUndefined();
    } finally {
      await app.close();
    }
  });

  it('failures() reports every failed attempt of a durable task: the final one and those restarted', async () => {
    const { app, tester } = await bootKit([Flaky], { durable: { connection: server.url, prefix: uniquePrefix() } });
    try {
      const durable = app.get(DurableSupervisor);
      await durable.startChild('flaky', null);
      await durable.startChild('doomed', null);
      await tester.idle(20_000);
      const failures = tester.failures();
      const seen = failures.map(({ kind, name, error }) => ({ kind, name, message: (error as Error).message }));
      // Exact content first: a failure shows what arrived.
      expect(seen).toEqual(
        expect.arrayContaining([
          { kind: 'durable', name: 'flaky', message: 'flaky attempt 1' },
          { kind: 'durable', name: 'flaky', message: 'flaky attempt 2' },
          { kind: 'durable', name: 'doomed', message: 'doomed for good' },
        ]),
      );
      expect(seen).toHaveLength(3);
      // The two attempts of one task, in order.
      expect(seen.filter(({ name }) => name === 'flaky').map(({ message }) => message)).toEqual([
        'flaky attempt 1',
        'flaky attempt 2',
      ]);
      expect(tester.failures()).toEqual([]);
    } finally {
      await app.close();
    }
  });

  it('idle() reads Redis in one slow pipelined poll while durable tasks run, not once per task every few ms', async () => {
    const { app, tester } = await bootKit([Exports], {
      durable: { connection: server.url, prefix: uniquePrefix(), concurrency: 50 },
    });
    const redis = new Redis(server.url);
    const commands = async () => Number(/total_commands_processed:(\d+)/.exec(await redis.info('stats'))![1]);
    try {
      const durable = app.get(DurableSupervisor);
      for (let n = 0; n < 50; n++) await durable.startChild('export', { n });
      const before = await commands();
      // 50 tasks held for 2 s: a poll of each task every 10 ms would be 10,000 reads and more.
      await expect(tester.idle(2000)).rejects.toThrow(/durable task "export"/);
      const used = (await commands()) - before;
      expect(used).toBeLessThan(2500);
      gate.resolve();
      await tester.idle(20_000);
      expect(finished).toHaveLength(50);
    } finally {
      gate.resolve();
      redis.disconnect();
      await app.close();
    }
  });
});
