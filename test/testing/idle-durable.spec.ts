import { Injectable } from '@nestjs/common';
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
});
