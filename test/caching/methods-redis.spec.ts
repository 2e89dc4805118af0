import type KeyvRedis from '@keyv/redis';
import { Injectable, Logger } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import type { Keyv } from 'keyv';
import { Cached, CacheService, ConcurrencyModule } from 'nestjs-concurrency';
import { Buffer } from 'node:buffer';
import { setTimeout as delay } from 'node:timers/promises';
import { redisStore } from '../fixtures/cache-redis.js';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';

/** Counts runs across every instance of the test (one process, several app instances on one Redis). */
const runs = { report: 0, rich: 0, odd: 0, named: 0, gated: 0 };
const hold: { until?: Promise<void>; version: number } = { version: 1 };

class Point {
  constructor(
    readonly x: number,
    readonly y: number,
  ) {}
}

function richValue(id: string) {
  return {
    id,
    at: new Date(Date.UTC(2026, 11, 4, 19, 0, 0, 123)),
    byName: new Map<string, unknown>([
      ['ann', { since: new Date(0), roles: new Set(['admin']) }],
      ['bob', undefined],
    ]),
    ids: new Set([1n, 2n ** 70n]),
    big: -(2n ** 65n),
    bytes: Buffer.from('héllo'),
    nested: { missing: undefined, list: [undefined, null, 1] },
  };
}

@Injectable()
class Reports {
  @Cached({ ttl: 60_000 })
  async report(id: string): Promise<string> {
    runs.report++;
    await delay(100);
    return `report ${id}`;
  }

  @Cached({ ttl: 60_000 })
  async rich(id: string): Promise<ReturnType<typeof richValue>> {
    runs.rich++;
    return richValue(id);
  }

  @Cached({ ttl: 60_000, tags: [(id: string) => `doc:${id}`] })
  async gated(id: string): Promise<{ id: string; version: number }> {
    runs.gated++;
    const version = hold.version;
    await hold.until;
    return { id, version };
  }

  @Cached({ ttl: 60_000, key: (id: string) => `named:${id}` })
  async named(id: string): Promise<{ id: string; at: Date }> {
    runs.named++;
    return { id, at: new Date(42) };
  }

  @Cached({ ttl: 60_000 })
  async odd(id: string): Promise<{ id: string; point: Point }> {
    runs.odd++;
    return { id, point: new Point(1, 2) };
  }
}

describe.skipIf(!redisAvailable)('@Cached on provider methods with a Redis L2 (real redis-server)', () => {
  let redis: RedisServer;
  const instances: TestingModule[] = [];
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  async function boot(count: number, listening = true): Promise<TestingModule[]> {
    const booted = await Promise.all(
      Array.from({ length: count }, async () => {
        const store: Keyv = redisStore(redis.url, 'methods-spec');
        const moduleRef = await Test.createTestingModule({
          imports: [ConcurrencyModule.forRoot({ cache: { stores: [store], storeTimeout: 1000 } })],
          providers: [Reports],
        }).compile();
        await moduleRef.init();
        return moduleRef;
      }),
    );
    instances.push(...booted);
    if (!listening) return booted;
    const store = (booted[0].get(CacheService) as unknown as { guarded: Array<{ keyv: Keyv }> }).guarded[0].keyv;
    const client = await (store.store as KeyvRedis<unknown>).getClient();
    await vi.waitFor(
      async () => {
        const subscribers = (await client.pubSubNumSub('methods-spec:nestjs-concurrency:cache:flight')) as Record<
          string,
          number
        >;
        expect(Object.values(subscribers)[0]).toBeGreaterThanOrEqual(instances.length);
      },
      { timeout: 10_000, interval: 20 },
    );
    return booted;
  }

  beforeEach(async () => {
    runs.report = runs.rich = runs.odd = runs.named = runs.gated = 0;
    hold.until = undefined;
    hold.version = 1;
    unhandled.length = 0;
    process.on('unhandledRejection', onUnhandled);
    redis = await RedisServer.start();
  });

  afterEach(async () => {
    for (const moduleRef of instances.splice(0)) await moduleRef.close();
    await redis?.stop();
    process.off('unhandledRejection', onUnhandled);
    expect(unhandled).toEqual([]);
  });

  it('runs the method once for 4 instances x 100 concurrent equal calls', async () => {
    const all = await boot(4);
    const values = await Promise.all(
      all.flatMap((m) => Array.from({ length: 100 }, () => m.get(Reports).report('q3'))),
    );
    expect(runs.report).toBe(1);
    expect(new Set(values)).toEqual(new Set(['report q3']));
    const followers = all.reduce(
      (sum, m) => sum + m.get(CacheService).stats().methods['Reports.report'].clusterFollowers,
      0,
    );
    expect(followers).toBeGreaterThan(0);
  });

  it('gives back Date, Map, Set, bigint, Buffer and nested undefined from the L1, the L2 and another instance', async () => {
    const [a, b] = await boot(2);
    const expected = richValue('r1');
    const computed = await a.get(Reports).rich('r1');
    expect(computed).toEqual(expected);
    // L1 of the computing instance.
    expect(await a.get(Reports).rich('r1')).toEqual(expected);
    // Another instance: read from Redis.
    const other = await b.get(Reports).rich('r1');
    expect(runs.rich).toBe(1);
    expect(other).toStrictEqual(expected);
    expect(Buffer.isBuffer(other.bytes)).toBe(true);
    expect(other.at).toBeInstanceOf(Date);
    expect(other.byName.get('ann')).toStrictEqual({ since: new Date(0), roles: new Set(['admin']) });
    expect('missing' in other.nested).toBe(true);
    // The L2 again on the first instance, its L1 emptied.
    a.get(CacheService).memory.clear();
    const again = await a.get(Reports).rich('r1');
    expect(again).toStrictEqual(expected);
    expect(runs.rich).toBe(1);
  });

  it('keeps a value the L2 cannot carry in memory only, says so, and still returns it', async () => {
    const warn = vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    try {
      const [a, b] = await boot(2);
      const value = await a.get(Reports).odd('p');
      expect(value.point).toBeInstanceOf(Point);
      expect(await a.get(Reports).odd('p')).toBe(value);
      expect(a.get(CacheService).stats().errors).toBeGreaterThanOrEqual(1);
      const messages = warn.mock.calls.map((call) => String(call[0]));
      expect(messages.some((m) => m.includes('cannot be carried') && m.includes('an instance of Point'))).toBe(true);
      // The other instance computes its own (it waited for a value that was never stored).
      const other = await b.get(Reports).odd('p');
      expect(other.point).toBeInstanceOf(Point);
      expect(runs.odd).toBe(2);
    } finally {
      warn.mockRestore();
    }
  });

  it('lets CACHE_MANAGER users read what they stored, next to typed method entries', async () => {
    const [a, b] = await boot(2);
    await a.get(CacheService).set('plain', { n: 1, s: 'x' }, 60_000);
    await a.get(Reports).rich('r2');
    expect(await b.get(CacheService).get('plain')).toEqual({ n: 1, s: 'x' });
    const read = await b.get(CacheService).get<ReturnType<typeof richValue>>(`Reports.rich:${'x'}`);
    expect(read).toBeUndefined(); // method keys are Class.method: + a hash, not the raw arguments
  });

  it('recomputes, without an error, when the L2 holds a typed entry it cannot decode', async () => {
    const [a] = await boot(1);
    const raw = redisStore(redis.url, 'methods-spec');
    try {
      await raw.set('named:x', {
        __ncBody: { t: 999, bogus: true },
        s: 1,
        o: 'elsewhere',
        e: Date.now() + 60_000,
        t: 1,
      });
      const value = await a.get(Reports).named('x');
      expect(value).toStrictEqual({ id: 'x', at: new Date(42) });
      expect(runs.named).toBe(1);
    } finally {
      await raw.disconnect();
    }
  });

  it('boots and answers with Redis down, computing once per key on the instance', async () => {
    await redis.stop();
    const [a] = await boot(1, false);
    const values = await Promise.all(Array.from({ length: 50 }, () => a.get(Reports).named('down')));
    expect(new Set(values.map((v) => v.id))).toEqual(new Set(['down']));
    expect(runs.named).toBe(1);
    expect(await a.get(Reports).named('down')).toBe(values[0]);
    expect(runs.named).toBe(1);
  });

  it('answers within the store timeouts while Redis is paused (CLIENT PAUSE), not after the pause', async () => {
    const [a] = await boot(1);
    const pauser = redisStore(redis.url, 'methods-spec');
    try {
      const client = (await (pauser.store as KeyvRedis<unknown>).getClient()) as unknown as {
        sendCommand(args: string[]): Promise<unknown>;
      };
      await client.sendCommand(['CLIENT', 'PAUSE', '15000', 'ALL']);
      const started = performance.now();
      const value = await a.get(Reports).named('paused');
      const took = performance.now() - started;
      expect(value).toStrictEqual({ id: 'paused', at: new Date(42) });
      // storeTimeout is 1000 ms: a read, a lease claim and a write each give up after it (the breaker skips the rest).
      expect(took).toBeLessThan(12_000);
    } finally {
      await redis.stop(); // ends the pause for good; afterEach's stop is then a no-op
      await pauser.disconnect().catch(() => undefined);
    }
  }, 30_000);

  it('does not store a value read before another instance evicted its tag while it ran', async () => {
    const [a, b] = await boot(2);
    let open!: () => void;
    hold.until = new Promise<void>((resolve) => (open = resolve));
    const inFlight = a.get(Reports).gated('d1');
    await vi.waitFor(() => expect(runs.gated).toBe(1), { timeout: 5000, interval: 10 });
    hold.version = 2;
    await b.get(CacheService).evictTags(['doc:d1']);
    // The eviction reaches instance a through Redis pub/sub: wait until a has marked its computation.
    const computing = (a.get(CacheService) as unknown as { computing: Map<string, { evicted: boolean }> }).computing;
    await vi.waitFor(() => expect([...computing.values()].some((r) => r.evicted)).toBe(true), {
      timeout: 10_000,
      interval: 10,
    });
    open();
    expect((await inFlight).version).toBe(1);
    hold.until = undefined;
    expect((await b.get(Reports).gated('d1')).version).toBe(2);
    expect((await a.get(Reports).gated('d1')).version).toBe(2);
  });
});
