import KeyvRedis from '@keyv/redis';
import { Test, type TestingModule } from '@nestjs/testing';
import type { Keyv } from 'keyv';
import { CacheService, ConcurrencyModule } from 'nestjs-concurrency';
import { Keyv as KeyvClass } from 'keyv';
import { RecordingLogger } from '../fixtures/cache-logger.js';
import { RedisLink } from '../../lib/caching/redis-link.js';
import { redisStore } from '../fixtures/cache-redis.js';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';

describe.skipIf(!redisAvailable)('CacheService with a real Redis L2', () => {
  let redis: RedisServer;
  const apps: TestingModule[] = [];

  beforeAll(async () => {
    redis = await RedisServer.start();
  });

  afterAll(async () => {
    await redis?.stop();
  });

  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
  });

  async function boot(stores: unknown[], logger?: RecordingLogger): Promise<CacheService> {
    const app = await Test.createTestingModule({
      imports: [ConcurrencyModule.forRoot({ cache: { stores: stores as Keyv[], storeTimeout: 1000 } })],
    }).compile();
    if (logger) app.useLogger(logger);
    await app.init();
    apps.push(app);
    return app.get(CacheService);
  }

  /** The remaining lifetime Redis itself holds for `key` (ms), read through the store's own client. */
  async function pttl(store: Keyv, key: string): Promise<number> {
    const client = await (store.store as KeyvRedis<unknown>).getClient();
    return client.pTTL(`cache-e2e::cache-e2e:${key}`);
  }

  it('rounds a fractional TTL to whole ms before it reaches Redis, and the L2 keeps working', async () => {
    const store = redisStore(redis.url);
    const cache = await boot([store]);
    await cache.set('fraction', 'a', 2099.9999999999995);
    expect(await cache.getOrStore('third', () => 'b', 10_000 / 3)).toBe('b');
    // CACHE_MANAGER users reach the same stores: wrap (as @Cached does, with its stale window) and mset
    await cache.cache.wrap('wrapped', async () => 'd', 10_000 / 3, 1000 / 3);
    await cache.cache.mset([{ key: 'many', value: 'e', ttl: 10_000 / 3 }]);
    await cache.set('integer', 'c', 5000);
    expect(cache.stats().errors).toBe(0);
    expect(await pttl(store, 'fraction')).toBeGreaterThan(1000);
    expect(await pttl(store, 'third')).toBeGreaterThan(1000);
    expect(await pttl(store, 'integer')).toBeGreaterThan(1000);
    expect(await pttl(store, 'wrapped')).toBeGreaterThan(1000);
    expect(await pttl(store, 'many')).toBeGreaterThan(1000);
    // another instance (an empty L1) reads all three from Redis
    const other = await boot([redisStore(redis.url)]);
    expect(await other.get('fraction')).toBe('a');
    expect(await other.get('third')).toBe('b');
    expect(await other.get('integer')).toBe('c');
  });

  it('takes a bare Keyv store adapter (new KeyvRedis(url)), as CacheModule users pass it', async () => {
    const a = await boot([new KeyvRedis(redis.url)]);
    const b = await boot([new KeyvRedis(redis.url)]);
    expect(await a.getOrStore('bare', () => ({ from: 'a' }), 5000)).toEqual({ from: 'a' });
    await a.set('bare-set', 42, 5000);
    // b's L1 is empty: both values come from Redis
    expect(await b.getOrStore('bare', () => ({ from: 'b' }), 5000)).toEqual({ from: 'a' });
    expect(await b.get('bare-set')).toBe(42);
    // evictions reach the other instance's L1 through the adapter's client (pub/sub)
    await a.del('bare-set');
    await vi.waitFor(async () => expect(await b.get('bare-set')).toBeUndefined(), { timeout: 5000, interval: 20 });
    expect(a.stats().errors + b.stats().errors).toBe(0);
  });

  it('keeps the evictions of two apps with distinct namespaces on one Redis apart', async () => {
    const a = await boot([redisStore(redis.url, 'app-a')]);
    const bStore = redisStore(redis.url, 'app-b');
    const b = await boot([bStore]);
    const b2 = await boot([redisStore(redis.url, 'app-b')]);
    const client = await (bStore.store as KeyvRedis<unknown>).getClient();
    // both B instances listen (their subscriber subscribes to evictions and lease releases in one go)
    await vi.waitFor(
      async () => {
        const numsub = (await client.pubSubNumSub('app-b:nestjs-concurrency:cache:flight')) as Record<string, number>;
        expect(Object.values(numsub)[0]).toBe(2);
      },
      { timeout: 10_000, interval: 20 },
    );
    await a.set('shared', 'a', 60_000);
    await b.set('shared', 'b', 60_000);
    await b.set('marker', 'b', 60_000);
    // B's entry now lives in its L1 only: a read that finds it proves the L1 copy was not dropped
    await client.del(['app-b::app-b:shared', 'app-b::app-b:marker']);
    await a.del('shared'); // app A's eviction, published before app B's own one below
    await b2.del('marker');
    await vi.waitFor(async () => expect(await b.get('marker')).toBeUndefined(), { timeout: 5000, interval: 20 });
    expect(await b.get('shared')).toBe('b');
  });

  it("warns at boot when a shared store has Keyv's default namespace, and not with a namespace of its own", async () => {
    const warned = new RecordingLogger();
    await boot([new KeyvClass({ store: new KeyvRedis(redis.url) })], warned);
    expect(warned.problems().join('\n')).toMatch(/store #1 .*namespace/);
    const quiet = new RecordingLogger();
    await boot([redisStore(redis.url, 'my-app')], quiet);
    expect(quiet.problems()).toEqual([]);
  });

  describe('with clocks that disagree by more than the TTL (Redis decides when an entry expires)', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it("serves another instance's entry to an instance whose clock is a minute ahead, and leaves it in Redis", async () => {
      const store = redisStore(redis.url);
      const a = await boot([store]);
      const b = await boot([redisStore(redis.url)]);
      expect(await a.getOrStore('ahead', () => 'from a', 2000)).toBe('from a');
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(Date.now() + 60_000); // b's clock (and a's: they are one process) a minute ahead
      expect(await b.getOrStore('ahead', () => 'from b', 2000)).toBe('from a');
      expect(b.stats().hits).toBe(1);
      vi.useRealTimers();
      expect(await pttl(store, 'ahead')).toBeGreaterThan(0);
    });

    it('keeps the tag members of an instance whose clock is behind when one whose clock is ahead tags too', async () => {
      const store = redisStore(redis.url);
      const link = RedisLink.for(
        [store],
        'origin',
        1000,
        () => undefined,
        () => undefined,
      );
      await link?.addTag('skewed-tag', 'behind-key', Date.now() + 1000);
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(Date.now() + 60_000); // this instance's clock is a minute ahead
      await link?.addTag('skewed-tag', 'ahead-key', Date.now() + 1000);
      vi.useRealTimers();
      expect((await link?.takeTag('skewed-tag'))?.sort()).toEqual(['ahead-key', 'behind-key']);
      await store.disconnect();
    });

    it('keeps a copy read by an instance whose clock is a minute behind no longer than Redis keeps the entry', async () => {
      const store = redisStore(redis.url);
      const a = await boot([store]);
      const b = await boot([redisStore(redis.url)]);
      expect(await a.getOrStore('behind', () => 'from a', 300)).toBe('from a');
      vi.useFakeTimers({ toFake: ['Date'] });
      const behind = Date.now() - 60_000;
      vi.setSystemTime(behind);
      expect(await b.getOrStore('behind', () => 'from b', 300)).toBe('from a'); // copied into b's L1
      vi.useRealTimers();
      await vi.waitFor(async () => expect(await pttl(store, 'behind')).toBe(-2), { timeout: 5000, interval: 20 });
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(behind + 1000); // a second later on b's clock: past what Redis had left when b read it
      expect(await b.getOrStore('behind', () => 'from b', 300)).toBe('from b');
    });
  });
});
