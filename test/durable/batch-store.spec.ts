import { Redis } from 'ioredis';
import { DurableSupervisor, DurableUnavailableError, InvalidPayloadError } from 'nestjs-concurrency';
import { freePort, RedisServer, redisAvailable } from '../utils/redis-server.js';
import { bootDurable, type DurableApp, uniquePrefix } from './helpers.js';

describe.skipIf(!redisAvailable)('durable batches: storing many inputs (real redis-server)', () => {
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
  });

  /** An API-only instance: nothing runs, so what is stored can be counted. */
  const apiOnly = async (prefix: string) => {
    const app = await bootDurable({ connection: server.url, prefix, workers: false });
    apps.push(app);
    return app.app.get(DurableSupervisor);
  };

  it('pulls an iterable lazily, storing it in chunks: the caller never holds more than two chunks of inputs', async () => {
    const prefix = uniquePrefix();
    const supervisor = await apiOnly(prefix);
    let maxAhead = 0;
    const counts: number[] = [];
    async function* inputs() {
      for (let n = 0; n < 5000; n++) {
        if (n % 500 === 0) {
          const stored = await redis.llen(`${prefix}:work:wait`);
          counts.push(stored);
          maxAhead = Math.max(maxAhead, n - stored);
        }
        yield { n };
      }
    }
    const batch = await supervisor.batch('work', inputs());
    expect(await redis.llen(`${prefix}:work:wait`)).toBe(5000);
    expect(await batch.progress()).toEqual({ total: 5000, completed: 0, failed: 0, running: 0, waiting: 5000 });
    // At most one chunk (1000) read ahead of what Redis holds, plus the one being stored.
    expect(maxAhead).toBeLessThanOrEqual(2000);
    expect(counts.at(-1)).toBeGreaterThan(0);
  });

  it('a bad input past the first chunk of an iterable cancels the batch, naming the input', async () => {
    const prefix = uniquePrefix();
    const supervisor = await apiOnly(prefix);
    function* inputs() {
      for (let n = 0; n < 1500; n++) yield n === 1200 ? { n: Symbol('x') } : { n };
    }
    const error = await supervisor.batch('work', inputs(), { id: 'bad' }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidPayloadError);
    expect((error as Error).message).toMatch(/input 1200 could not be stored/);
    expect((error as Error).message).toMatch(/inputs\[1200\]\.n/);
    const batch = await supervisor.getBatch('bad');
    await expect(batch!.await()).rejects.toThrow(/cancelled/);
  });

  it('a caller stopped while storing: the same id stores the rest, not what is already there', async () => {
    const prefix = uniquePrefix();
    const supervisor = await apiOnly(prefix);
    const stop = new Error('caller stopped');
    function* firstTry() {
      for (let n = 0; n < 2500; n++) {
        if (n === 2100) throw stop;
        yield n;
      }
    }
    await expect(supervisor.batch('work', firstTry(), { id: 'resumed' })).rejects.toBe(stop);
    const before = await redis.llen(`${prefix}:work:wait`);
    expect(before).toBe(2000);
    const batch = await supervisor.batch(
      'work',
      Array.from({ length: 2500 }, (_, n) => n),
      { id: 'resumed' },
    );
    expect(await redis.llen(`${prefix}:work:wait`)).toBe(2500);
    expect((await batch.progress()).total).toBe(2500);
  });

  it('with Redis down, batch() and getBatch() reject with DurableUnavailableError within storeTimeout', async () => {
    const url = `redis://127.0.0.1:${await freePort()}`;
    const app = await bootDurable({ connection: url, prefix: uniquePrefix(), workers: false, storeTimeout: 300 });
    apps.push(app);
    const supervisor = app.app.get(DurableSupervisor);
    const started = Date.now();
    await expect(supervisor.batch('work', [1, 2, 3])).rejects.toBeInstanceOf(DurableUnavailableError);
    await expect(supervisor.getBatch('x')).rejects.toBeInstanceOf(DurableUnavailableError);
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
