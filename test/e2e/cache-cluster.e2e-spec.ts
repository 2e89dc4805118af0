import type KeyvRedis from '@keyv/redis';
import type { INestApplication } from '@nestjs/common';
import type { Keyv } from 'keyv';
import { CacheService } from 'nestjs-concurrency';
import { setTimeout as delay } from 'node:timers/promises';
import { type CallCounter, createCacheAppModule, type Gate } from '../fixtures/cache-app.js';
import { redisStore } from '../fixtures/cache-redis.js';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';
import { bootstrapApp, HTTP_ADAPTERS } from './utils/bootstrap-app.js';

interface Instance {
  app: INestApplication;
  url: string;
  counter: CallCounter;
  gate: Gate;
  store: Keyv;
  cache: CacheService;
}

const INSTANCES = 4;
const CONCURRENT = 250;

interface Answer {
  status: number;
  cache: string | null;
  body: string;
}

async function get(url: string): Promise<Answer> {
  const res = await fetch(url);
  return { status: res.status, cache: res.headers.get('x-cache'), body: await res.text() };
}

/** `count` (default `CONCURRENT`) requests at once to `path` on every instance. */
function burst(instances: Instance[], path: string, count = CONCURRENT): Promise<Answer[]> {
  return Promise.all(instances.flatMap((i) => Array.from({ length: count }, () => get(i.url + path))));
}

const calls = (instances: Instance[], route: string) => instances.reduce((n, i) => n + i.counter.count(route), 0);

describe.skipIf(!redisAvailable).each(HTTP_ADAPTERS)(
  "@Cached with singleFlight: 'cluster', 4 instances on one Redis (%s)",
  (adapter) => {
    let redis: RedisServer;
    let instances: Instance[] = [];
    const storeTimeout = 1000; // generous: a loaded machine must not turn the coordination into fallbacks
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);

    async function boot(cache: Record<string, unknown> = {}): Promise<Instance[]> {
      instances = await Promise.all(
        Array.from({ length: INSTANCES }, async () => {
          const store = redisStore(redis.url);
          const fixture = createCacheAppModule({ stores: [store], storeTimeout, ...cache });
          const app = await bootstrapApp(adapter, fixture.module);
          await app.listen(0, '127.0.0.1');
          const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
          return { app, url, counter: fixture.counter, gate: fixture.gate, store, cache: app.get(CacheService) };
        }),
      );
      // Every instance listens to the lease releases before the test sends its burst.
      const client = await (instances[0].store.store as KeyvRedis<unknown>).getClient();
      await vi.waitFor(
        async () => {
          const numsub = (await client.pubSubNumSub('cache-e2e:nestjs-concurrency:cache:flight')) as Record<
            string,
            number
          >;
          expect(Object.values(numsub)[0]).toBe(INSTANCES);
        },
        { timeout: 10_000, interval: 20 },
      );
      return instances;
    }

    beforeEach(async () => {
      unhandled.length = 0;
      process.on('unhandledRejection', onUnhandled);
      redis = await RedisServer.start();
    });

    afterEach(async () => {
      for (const instance of instances.splice(0)) await instance.app.close();
      await redis?.stop();
      process.off('unhandledRejection', onUnhandled);
    });

    it('runs the handler once for 4 instances x 250 concurrent cold requests, all 200 with one body', async () => {
      const all = await boot();
      const answers = await burst(all, '/slow');
      expect(calls(all, 'slow')).toBe(1);
      expect(answers.every((a) => a.status === 200)).toBe(true);
      expect(new Set(answers.map((a) => a.body))).toEqual(new Set([JSON.stringify({ calls: 1 })]));
      // MISS while the handler ran (leader, joined, or served from another instance), HIT once it was stored
      expect(answers.every((a) => a.cache === 'MISS' || a.cache === 'HIT')).toBe(true);
      const stats = all.map((i) => i.cache.stats());
      expect(stats.reduce((n, s) => n + s.clusterFollowers, 0)).toBeGreaterThan(0);
      expect(stats.reduce((n, s) => n + s.clusterFallbacks, 0)).toBe(0);
    });

    it("gives every instance's requests the status, content type and headers the leader's handler set", async () => {
      const all = await boot();
      const answers = await Promise.all(
        all.flatMap((i) =>
          Array.from({ length: 50 }, async () => {
            const res = await fetch(i.url + '/typed');
            return { status: res.status, type: res.headers.get('content-type'), typed: res.headers.get('x-typed') };
          }),
        ),
      );
      expect(calls(all, 'typed')).toBe(1);
      for (const answer of answers)
        expect(answer).toEqual({ status: 201, type: expect.stringMatching(/^text\/plain/), typed: '1' });
    });

    it("runs the handler once per instance with singleFlight: 'instance'", async () => {
      instances = await Promise.all(
        Array.from({ length: INSTANCES }, async () => {
          const store = redisStore(redis.url);
          const fixture = createCacheAppModule({ stores: [store], storeTimeout, singleFlight: 'instance' });
          const app = await bootstrapApp(adapter, fixture.module);
          await app.listen(0, '127.0.0.1');
          const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
          return { app, url, counter: fixture.counter, gate: fixture.gate, store, cache: app.get(CacheService) };
        }),
      );
      const answers = await burst(instances, '/slow');
      expect(answers.every((a) => a.status === 200)).toBe(true);
      expect(instances.map((i) => i.counter.count('slow'))).toEqual([1, 1, 1, 1]);
    });

    it('refreshes a stale entry requested on every instance once, cluster-wide', async () => {
      const all = await boot();
      // Real time: Redis decides when its entries turn stale (its own TTL), so the clock cannot be faked here.
      const first = await get(`${all[0].url}/swr-10s`); // fresh for 10 s, then stale for a minute
      const storedBy = performance.now(); // the entry was written before its response arrived
      expect(first.cache).toBe('MISS');
      const copies = await Promise.all(all.slice(1).map((i) => get(`${i.url}/swr-10s`)));
      expect(copies.map((a) => a.cache)).toEqual(['HIT', 'HIT', 'HIT']); // in every L1
      await delay(storedBy + 10_100 - performance.now()); // stale everywhere
      // (a burst small enough to end well within the 10 s the refreshed value stays fresh, on a loaded machine too)
      const answers = await burst(all, '/swr-10s', 25);
      // stale until the one refresh is stored and its release drops the stale copies, then the new value
      const seen = (a: Answer) => `${a.status} ${a.cache} ${(JSON.parse(a.body) as { calls: number }).calls}`;
      for (const a of answers) expect(['200 STALE 1', '200 HIT 2']).toContain(seen(a));
      let fresh: Answer[] = [];
      for (const until = performance.now() + 20_000; ; await delay(50)) {
        fresh = await Promise.all(all.map((i) => get(`${i.url}/swr-10s`)));
        if (fresh.every((a) => seen(a) === '200 HIT 2') || performance.now() > until) break;
      }
      expect(fresh.map(seen)).toEqual(all.map(() => '200 HIT 2'));
      expect(all.every((i) => i.cache.refreshingKeys().length === 0)).toBe(true);
      expect(calls(all, 'swr-10s')).toBe(2); // the first computation and one refresh, for 4 instances
    }, 60_000);

    it('answers every request 200 when Redis stops mid-burst, with at most one computation per instance', async () => {
      const all = await boot({ singleFlightWait: 10_000 });
      const answers = burst(all, '/gated');
      // one instance computes (held at its gate), the others wait for its value on Redis
      await vi.waitFor(() => expect(all.map((i) => i.gate.waiting).reduce((a, b) => a + b)).toBe(1), {
        timeout: 10_000,
        interval: 10,
      });
      await redis.stop();
      // the waiting instances stop waiting (not after singleFlightWait: 10 s) and compute themselves
      await vi.waitFor(() => expect(all.map((i) => i.gate.waiting)).toEqual([1, 1, 1, 1]), {
        timeout: 4 * storeTimeout + 3000,
        interval: 10,
      });
      for (const i of all) i.gate.open();
      const done = await answers;
      expect(done.every((a) => a.status === 200)).toBe(true);
      expect(all.map((i) => i.counter.count('gated'))).toEqual([1, 1, 1, 1]);
      expect(all.reduce((n, i) => n + i.cache.stats().clusterFallbacks, 0)).toBe(INSTANCES - 1);
      expect(unhandled).toEqual([]);
    });
  },
);
