import { CACHE_MANAGER } from '@nestjs/cache-manager';
import { Test, type TestingModule } from '@nestjs/testing';
import { CacheService, ConcurrencyModule, IsolatedTimeoutError } from 'nestjs-concurrency';
import { partitionedRedisStore } from '../fixtures/cache-stores.js';

describe('CacheService', () => {
  let moduleRef: TestingModule;
  let cache: CacheService;

  beforeEach(async () => {
    moduleRef = await Test.createTestingModule({ imports: [ConcurrencyModule.forRoot()] }).compile();
    await moduleRef.init();
    cache = moduleRef.get(CacheService);
  });

  afterEach(async () => {
    await moduleRef.close();
  });

  it('stores, reads and deletes values', async () => {
    await cache.set('a', { n: 1 });
    expect(await cache.get('a')).toEqual({ n: 1 });
    await cache.del('a');
    expect(await cache.get('a')).toBeUndefined();
  });

  it('expires a value after its ttl in ms', async () => {
    await cache.set('short', 1, 50);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(await cache.get('short')).toBeUndefined();
  });

  it('getOrStore runs the function once per key for 100 concurrent callers', async () => {
    let calls = 0;
    const fn = async () => {
      calls++;
      await new Promise((resolve) => setTimeout(resolve, 50));
      return { calls };
    };
    const values = await Promise.all(Array.from({ length: 100 }, () => cache.getOrStore('k', fn)));
    expect(calls).toBe(1);
    expect(new Set(values).size).toBe(1);
    expect(await cache.getOrStore('k', fn)).toEqual({ calls: 1 });
    expect(cache.stats()).toMatchObject({ misses: 1, coalesced: 99, hits: 1 });
  });

  it('getOrStore does not store a rejection', async () => {
    await expect(cache.getOrStore('bad', () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await cache.getOrStore('bad', () => 'fine')).toBe('fine');
  });

  it('isolated runs callers for one key one at a time', async () => {
    let inside = 0;
    let maxInside = 0;
    let counter = 0;
    await Promise.all(
      Array.from({ length: 10 }, () =>
        cache.isolated('counter', async () => {
          inside++;
          maxInside = Math.max(maxInside, inside);
          const read = counter;
          await new Promise((resolve) => setTimeout(resolve, 5));
          counter = read + 1;
          inside--;
        }),
      ),
    );
    expect(counter).toBe(10);
    expect(maxInside).toBe(1);
  });

  it('isolated lets different keys run at the same time', async () => {
    let release!: () => void;
    const held = cache.isolated('a', () => new Promise<void>((resolve) => (release = resolve)));
    await expect(cache.isolated('b', () => 'b', { timeout: 100 })).resolves.toBe('b');
    release();
    await held;
  });

  it('isolated rejects with IsolatedTimeoutError when the lock stays taken, and releases after a throw', async () => {
    let release!: () => void;
    const held = cache.isolated('k', () => new Promise<void>((resolve) => (release = resolve)));
    const waited = cache.isolated('k', () => 'never', { timeout: 50 });
    await expect(waited).rejects.toBeInstanceOf(IsolatedTimeoutError);
    await expect(waited).rejects.toThrow(/isolated\("k"\) waited 50 ms/);
    release();
    await held;
    await expect(cache.isolated('k', () => Promise.reject(new Error('inner')))).rejects.toThrow('inner');
    await expect(cache.isolated('k', () => 'free', { timeout: 50 })).resolves.toBe('free');
  });

  it('isolated refuses a timeout setTimeout cannot wait (it would fire after 1 ms) before taking the lock', async () => {
    const fn = vi.fn(() => 'ran');
    await expect(cache.isolated('k', fn, { timeout: 2 ** 31 })).rejects.toThrow(
      /CacheService\.isolated\(\): invalid timeout: expected .*<= 2147483647/,
    );
    await expect(cache.isolated('k', fn, { timeout: -1 })).rejects.toBeInstanceOf(RangeError);
    expect(fn).not.toHaveBeenCalled();
    await expect(cache.isolated('k', fn, { timeout: Infinity })).resolves.toBe('ran');
  });

  it('refuses a ttl that would keep a value forever (0, negative, Infinity), naming the option', async () => {
    for (const ttl of [0, -1, Infinity, Number.NaN]) {
      await expect(cache.set('k', 1, ttl)).rejects.toThrow(/CacheService\.set\(\) ttl .*finite number of ms > 0/);
      await expect(cache.getOrStore('k', () => 1, ttl)).rejects.toThrow(/CacheService\.getOrStore\(\) ttl/);
    }
    expect(await cache.get('k')).toBeUndefined();
  });

  it('prunes tag members past their time, so a tag does not grow with keys that expired', () => {
    const past = Date.now() - 1;
    for (let i = 0; i < 5000; i++) cache.tagLocal(`/n/${i}`, ['busy', `item:${i}`], past);
    expect(cache.localTags.size('busy')).toBeLessThan(1024);
    expect(cache.localTags.size()).toBeLessThan(2100);
    cache.tagLocal('/alive', ['busy'], Date.now() + 60_000);
    expect(cache.localTags.size('busy')).toBeGreaterThan(0);
  });

  it('is the cache injected as CACHE_MANAGER of @nestjs/cache-manager', async () => {
    const manager = moduleRef.get(CACHE_MANAGER);
    expect(manager).toBe(cache.cache);
    await manager.set('shared', 42, 1000);
    expect(await cache.get('shared')).toBe(42);
  });
});

describe('CacheService with a Redis L2 that stops answering', () => {
  it('waits storeTimeout for the first eviction publish, then skips Redis for a second (breaker)', async () => {
    const { keyv, calls } = partitionedRedisStore();
    const storeTimeout = 200;
    const moduleRef = await Test.createTestingModule({
      imports: [ConcurrencyModule.forRoot({ cache: { stores: [keyv], storeTimeout } })],
    }).compile();
    await moduleRef.init();
    const cache = moduleRef.get(CacheService);
    try {
      let started = Date.now();
      await cache.del('a');
      expect(Date.now() - started).toBeGreaterThanOrEqual(storeTimeout - 20);
      started = Date.now();
      await cache.del('b');
      await cache.evictTags(['t']);
      expect(Date.now() - started).toBeLessThan(storeTimeout);
      expect(calls.publish).toBe(1);
      expect(cache.stats().errors).toBeGreaterThanOrEqual(3);
    } finally {
      await moduleRef.close();
    }
  });
});
