import type KeyvRedis from '@keyv/redis';
import type { INestApplication } from '@nestjs/common';
import type { Keyv } from 'keyv';
import { CacheService } from 'nestjs-concurrency';
import request from 'supertest';
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
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Every key in the Redis behind `store`, with its value. */
async function redisContents(store: Keyv): Promise<string> {
  const client = await (store.store as KeyvRedis<unknown>).getClient();
  const keys = await client.keys('*');
  const values = await Promise.all(
    keys.map(async (k) =>
      (await client.type(k)) === 'zset' ? (await client.zRange(k, 0, -1)).join(',') : await client.get(k),
    ),
  );
  return keys.map((k, i) => `${k}=${values[i]}`).join('\n');
}

describe.skipIf(!redisAvailable).each(HTTP_ADAPTERS)(
  '@Cached with a Redis L2 shared by two instances (%s)',
  (adapter) => {
    let redis: RedisServer;
    let a: Instance;
    let b: Instance;
    const storeTimeout = 300;

    async function instance(): Promise<Instance> {
      const store = redisStore(redis.url);
      const fixture = createCacheAppModule({ stores: [store], storeTimeout });
      const app = await bootstrapApp(adapter, fixture.module);
      await app.listen(0, '127.0.0.1');
      return { app, url: await app.getUrl(), counter: fixture.counter, gate: fixture.gate, store };
    }

    beforeEach(async () => {
      redis = await RedisServer.start();
      a = await instance();
      b = await instance();
    });

    afterEach(async () => {
      await a?.app.close();
      await b?.app.close();
      await redis?.stop();
    });

    it('shares entries: what one instance computed is a hit on the other', async () => {
      await request(a.url).get('/public').expect(200).expect('X-Cache', 'MISS');
      const res = await request(b.url).get('/public').expect(200).expect('X-Cache', 'HIT');
      expect(res.body).toEqual({ calls: 1 });
      expect(b.counter.count('public')).toBe(0);
    });

    it('sees an eviction by tag made on the other instance, in its in-memory L1 too', async () => {
      await request(a.url).get('/items').expect('X-Cache', 'MISS');
      await request(b.url).get('/items').expect('X-Cache', 'HIT'); // now in b's L1 as well
      await request(b.url).get('/items').expect('X-Cache', 'HIT');
      await request(a.url).post('/items').expect(201);
      await vi.waitFor(
        async () => {
          await request(b.url).get('/items').expect('X-Cache', 'MISS');
        },
        { timeout: 5000, interval: 50 },
      );
      expect(b.counter.count('items')).toBe(1);
    });

    it('sees an eviction by key made on the other instance', async () => {
      await request(a.url).get('/public').expect('X-Cache', 'MISS');
      await request(b.url).get('/public').expect('X-Cache', 'HIT');
      await request(b.url).post('/public/evict').expect(201);
      await vi.waitFor(() => request(a.url).get('/public').expect('X-Cache', 'MISS'), { timeout: 5000, interval: 50 });
    });

    it('keeps the expiry of an entry copied from Redis into the L1 (no second full TTL)', async () => {
      const written = Date.now();
      await request(a.url).get('/second').expect('X-Cache', 'MISS'); // ttl 1000
      await sleep(600);
      await request(b.url).get('/second').expect('X-Cache', 'HIT'); // copied into b's L1 with ~400 ms left
      await sleep(Math.max(0, written + 1300 - Date.now()));
      await request(b.url).get('/second').expect('X-Cache', 'MISS');
      expect(b.counter.count('second')).toBe(1);
    });

    it('never writes a vary header value (a token) into Redis keys, values or tag sets', async () => {
      const token = 'Bearer s3cr3t-t0ken-value';
      await request(a.url).get('/by-token').set('Authorization', token).expect('X-Cache', 'MISS');
      await request(b.url).get('/by-token').set('Authorization', token).expect('X-Cache', 'HIT');
      await request(a.url).get('/items').expect('X-Cache', 'MISS');
      const contents = await redisContents(a.store);
      expect(contents).toMatch(/by-token\|authorization:/);
      expect(contents).not.toContain('s3cr3t');
    });

    it('keeps an entry evictable by tag when another instance evicted that tag while its handler ran', async () => {
      const computing = request(a.url)
        .get('/gated')
        .then((res) => res);
      // a's handler is held, and the tag membership it wrote before running is in Redis
      await vi.waitFor(
        async () => {
          expect(a.gate.waiting).toBe(1);
          expect(await redisContents(a.store)).toMatch(/tag:gated=.*\/gated/);
        },
        { timeout: 5000, interval: 20 },
      );
      await request(b.url).post('/gated').expect(201); // deletes the tag's set while a computes
      expect(await redisContents(a.store)).not.toMatch(/tag:gated=/);
      a.gate.open();
      const computed = await computing;
      expect(computed.status).toBe(200);
      expect(computed.headers['x-cache']).toBe('MISS');
      await request(a.url).get('/gated').expect('X-Cache', 'HIT');
      await request(b.url).post('/gated').expect(201); // must find a's new entry under the tag
      await vi.waitFor(() => request(a.url).get('/gated').expect('X-Cache', 'MISS'), { timeout: 3000, interval: 50 });
      expect(a.counter.count('gated')).toBe(2);
    });

    it('loses no tag member when both instances tag keys under one tag at the same time', async () => {
      const ids = Array.from({ length: 20 }, (_, i) => i + 1);
      await Promise.all(
        ids.map((id) =>
          request(id % 2 ? a.url : b.url)
            .get(`/items/${id}`)
            .expect('X-Cache', 'MISS'),
        ),
      );
      await request(a.url).post('/items').expect(201);
      for (const id of ids) await request(a.url).get(`/items/${id}`).expect('X-Cache', 'MISS');
    });

    it('evicts by tags with : and * exactly the entries of that tag, on both instances', async () => {
      const ids = ['1', '*', '1:2', '1*', '*:1'];
      const path = (id: string) => `/items/${encodeURIComponent(id)}`;
      for (const id of ids) await request(a.url).get(path(id)).expect('X-Cache', 'MISS');
      for (const id of ids) await request(b.url).get(path(id)).expect('X-Cache', 'HIT');
      await request(b.url).post(path('*')).expect(201); // tag item:*, evicted through Redis
      await vi.waitFor(() => request(a.url).get(path('*')).expect('X-Cache', 'MISS'), { timeout: 3000, interval: 50 });
      for (const id of ids.filter((i) => i !== '*')) {
        await request(a.url).get(path(id)).expect('X-Cache', 'HIT');
        await request(b.url).get(path(id)).expect('X-Cache', 'HIT');
      }
      await request(a.url).post(path('1:2')).expect(201);
      await vi.waitFor(() => request(b.url).get(path('1:2')).expect('X-Cache', 'MISS'), {
        timeout: 3000,
        interval: 50,
      });
      for (const id of ['1', '1*', '*:1']) await request(b.url).get(path(id)).expect('X-Cache', 'HIT');
    });

    it('still answers 200 within storeTimeout plus margin after Redis is killed', async () => {
      await request(a.url).get('/public').expect('X-Cache', 'MISS');
      await redis.stop();
      const started = Date.now();
      await request(a.url).get('/public').expect(200).expect('X-Cache', 'HIT'); // from the in-memory L1
      await request(b.url).get('/public').expect(200);
      expect(b.counter.count('public')).toBe(1); // b's own handler ran: Redis is gone
      await request(a.url).get('/n/1').expect(200);
      await request(a.url).post('/items').expect(201);
      expect(Date.now() - started).toBeLessThan(4 * storeTimeout + 2000);
      expect(b.app.get(CacheService).stats().errors + a.app.get(CacheService).stats().errors).toBeGreaterThan(0);
    });
  },
);
