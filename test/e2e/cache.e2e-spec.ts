import type { INestApplication } from '@nestjs/common';
import { CacheService } from 'nestjs-concurrency';
import request from 'supertest';
import { type CallCounter, createCacheAppModule, type Gate, HOSTILE_VALUES } from '../fixtures/cache-app.js';
import { RecordingLogger } from '../fixtures/cache-logger.js';
import { hangingStore, throwingStore } from '../fixtures/cache-stores.js';
import { bootstrapApp, HTTP_ADAPTERS } from './utils/bootstrap-app.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `fn` with a clock that moves only when told (`at(ms)`: ms after the start), so a loaded machine cannot make a
 * short TTL pass between two requests. Timers stay real.
 */
async function withClock(fn: (at: (ms: number) => void) => Promise<void>): Promise<void> {
  vi.useFakeTimers({ toFake: ['Date'] });
  const t0 = Date.now();
  try {
    await fn((ms) => vi.setSystemTime(t0 + ms));
  } finally {
    vi.useRealTimers();
  }
}

describe.each(HTTP_ADAPTERS)('@Cached responses (%s)', (adapter) => {
  let app: INestApplication;
  let counter: CallCounter;
  let gate: Gate;
  let url: string;

  beforeEach(async () => {
    const fixture = createCacheAppModule();
    counter = fixture.counter;
    gate = fixture.gate;
    app = await bootstrapApp(adapter, fixture.module);
    await app.listen(0, '127.0.0.1');
    url = await app.getUrl();
  });

  afterEach(async () => {
    gate.open();
    await app.close();
  });

  it('runs the handler once for 200 concurrent cold requests and gives all of them its result', async () => {
    const responses = await Promise.all(Array.from({ length: 200 }, () => request(url).get('/slow')));
    expect(counter.count('slow')).toBe(1);
    for (const res of responses) {
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ calls: 1 });
      // a request the server accepted only after the handler finished is a plain hit
      expect(['MISS', 'HIT']).toContain(res.headers['x-cache']);
    }
    const stats = app.get(CacheService).stats();
    expect(stats.misses).toBe(1);
    expect(stats.coalesced).toBeGreaterThan(0);
    expect(stats.coalesced + stats.hits).toBe(199);
  });

  it('answers HIT from the cache afterwards', async () => {
    await request(url).get('/public').expect(200).expect('X-Cache', 'MISS');
    const res = await request(url).get('/public').expect(200).expect('X-Cache', 'HIT');
    expect(res.body).toEqual({ calls: 1 });
    expect(counter.count('public')).toBe(1);
  });

  it('keys HEAD like GET', async () => {
    await request(url).get('/public').expect(200).expect('X-Cache', 'MISS');
    await request(url).head('/public').expect(200).expect('X-Cache', 'HIT');
    expect(counter.count('public')).toBe(1);
  });

  it('computes again once the TTL has passed', async () => {
    await withClock(async (at) => {
      await request(url).get('/short').expect('X-Cache', 'MISS');
      at(90); // ttl is 100 ms
      await request(url).get('/short').expect('X-Cache', 'HIT');
      at(110);
      const res = await request(url).get('/short').expect('X-Cache', 'MISS');
      expect(res.body).toEqual({ calls: 2 });
    });
  });

  it('serves STALE at once after the TTL, refreshes once in the background, then serves the new value', async () => {
    await request(url).get('/swr').expect('X-Cache', 'MISS');
    await sleep(300); // ttl 100 ms, staleWhileRevalidate 10 s
    const first = await request(url).get('/swr').expect('X-Cache', 'STALE');
    expect(first.body).toEqual({ calls: 1 });
    // the refresh takes 300 ms: these arrive while it runs and must not start another one
    const stale = await Promise.all(Array.from({ length: 20 }, () => request(url).get('/swr')));
    for (const res of stale) {
      expect(res.headers['x-cache']).toBe('STALE');
      expect(res.body).toEqual({ calls: 1 });
    }
    await vi.waitFor(
      async () => {
        const res = await request(url).get('/swr');
        expect(res.headers['x-cache']).toBe('HIT');
        expect(res.body).toEqual({ calls: 2 });
      },
      { timeout: 5000, interval: 50 },
    );
    expect(counter.count('swr')).toBe(2);
  });

  it('refreshes no @Res({ passthrough: true }) route in the background (its response was sent): after the TTL it is a miss', async () => {
    await withClock(async (at) => {
      await request(url).get('/swr-passthrough').expect('X-Cache', 'MISS').expect('x-computed', '1');
      at(90); // ttl is 100 ms, staleWhileRevalidate 10 s (not applied: no stale response to refresh behind)
      await request(url).get('/swr-passthrough').expect('X-Cache', 'HIT');
      at(150);
      const res = await request(url).get('/swr-passthrough').expect('X-Cache', 'MISS').expect('x-computed', '2');
      expect(res.body).toEqual({ calls: 2 });
      await request(url).get('/swr-passthrough').expect('X-Cache', 'HIT');
    });
    expect(app.get(CacheService).stats().stale).toBe(0);
    expect(counter.count('swr-passthrough')).toBe(2);
  });

  it('gives up a background refresh that never settles when the entry expires: the key is refreshed again later', async () => {
    await request(url).get('/hung-refresh').expect('X-Cache', 'MISS'); // ttl 100 ms, staleWhileRevalidate 1.5 s
    await sleep(150);
    await request(url).get('/hung-refresh').expect('X-Cache', 'STALE'); // its refresh hangs
    await vi.waitFor(() => expect(counter.count('hung-refresh')).toBe(2));
    await sleep(1_550); // past ttl + staleWhileRevalidate: computed again
    await request(url).get('/hung-refresh').expect('X-Cache', 'MISS');
    expect(counter.count('hung-refresh')).toBe(3);
    await sleep(150);
    const start = Date.now();
    await request(url).get('/hung-refresh').expect('X-Cache', 'STALE');
    // Refreshed in the background now, not only once this entry expires too (1.5 s on).
    await vi.waitFor(
      async () => {
        const res = await request(url).get('/hung-refresh');
        expect(res.body).toEqual({ calls: 4 });
      },
      { timeout: 1_000, interval: 50 },
    );
    expect(Date.now() - start).toBeLessThan(1_000);
  });

  it('never caches an error, and says X-Cache: BYPASS on it', async () => {
    await request(url).get('/flaky').expect(503).expect('X-Cache', 'BYPASS');
    const res = await request(url).get('/flaky').expect(200).expect('X-Cache', 'MISS');
    expect(res.body).toEqual({ calls: 2 });
    await request(url).get('/flaky').expect(200).expect('X-Cache', 'HIT');
  });

  it('never caches undefined', async () => {
    await request(url).get('/nothing').expect(200);
    await request(url).get('/nothing').expect(200);
    expect(counter.count('nothing')).toBe(2);
  });

  it('bypasses the cache for a request with Authorization or Cookie', async () => {
    await request(url).get('/public').expect('X-Cache', 'MISS');
    const res = await request(url).get('/public').set('Authorization', 'Bearer a').expect('X-Cache', 'BYPASS');
    expect(res.body).toEqual({ calls: 2 });
    await request(url).get('/public').set('Cookie', 'sid=1').expect('X-Cache', 'BYPASS');
    expect(counter.count('public')).toBe(3);
  });

  it("caches per user with vary: ['user'] and never serves one user's response to another", async () => {
    const a1 = await request(url).get('/me').set('Authorization', 'Bearer alice').expect('X-Cache', 'MISS');
    const b1 = await request(url).get('/me').set('Authorization', 'Bearer bob').expect('X-Cache', 'MISS');
    const a2 = await request(url).get('/me').set('Authorization', 'Bearer alice').expect('X-Cache', 'HIT');
    expect(a2.body).toEqual(a1.body);
    expect(b1.body).not.toEqual(a1.body);
    await request(url).get('/me').expect('X-Cache', 'MISS');
  });

  it('keys by path and sorted query string', async () => {
    await request(url).get('/search?b=2&a=1').expect('X-Cache', 'MISS');
    const same = await request(url).get('/search?a=1&b=2').expect('X-Cache', 'HIT');
    expect(same.body.calls).toBe(1);
    await request(url).get('/search?a=1&b=3').expect('X-Cache', 'MISS');
    expect(counter.count('search')).toBe(2);
  });

  it('keeps the order of a repeated query parameter in the key (?tag=a&tag=b is not ?tag=b&tag=a)', async () => {
    const ab = await request(url).get('/search?tag=a&tag=b').expect('X-Cache', 'MISS');
    expect(ab.body.query.tag).toEqual(['a', 'b']);
    const ba = await request(url).get('/search?tag=b&tag=a').expect('X-Cache', 'MISS');
    expect(ba.body.query.tag).toEqual(['b', 'a']);
    await request(url).get('/search?tag=a&x=1&tag=b').expect('X-Cache', 'MISS');
    await request(url).get('/search?x=1&tag=a&tag=b').expect('X-Cache', 'HIT');
    expect(counter.count('search')).toBe(3);
  });

  it('evicts by key after a @CacheEvict route succeeded', async () => {
    await request(url).get('/public').expect('X-Cache', 'MISS');
    await request(url).get('/public').expect('X-Cache', 'HIT');
    await request(url).post('/public/evict').expect(201);
    await request(url).get('/public').expect('X-Cache', 'MISS');
  });

  it('evicts by tag, including tags computed from the request', async () => {
    await request(url).get('/items').expect('X-Cache', 'MISS');
    await request(url).get('/items/1').expect('X-Cache', 'MISS');
    await request(url).get('/items/2').expect('X-Cache', 'MISS');
    await request(url).post('/items/1').expect(201);
    await request(url).get('/items/1').expect('X-Cache', 'MISS');
    await request(url).get('/items/2').expect('X-Cache', 'HIT');
    await request(url).post('/items').expect(201);
    await request(url).get('/items').expect('X-Cache', 'MISS');
    await request(url).get('/items/2').expect('X-Cache', 'MISS');
  });

  it('evicts by tags with : and * exactly the entries of that tag', async () => {
    const ids = ['1', '*', '1:2', '1*', '*:1', '2'];
    const path = (id: string) => `/items/${encodeURIComponent(id)}`;
    for (const id of ids) await request(url).get(path(id)).expect('X-Cache', 'MISS');
    await request(url).post(path('*')).expect(201); // tag item:*
    for (const id of ids)
      await request(url)
        .get(path(id))
        .expect('X-Cache', id === '*' ? 'MISS' : 'HIT');
    await request(url).post(path('1:2')).expect(201); // tag item:1:2
    for (const id of ids)
      await request(url)
        .get(path(id))
        .expect('X-Cache', id === '1:2' ? 'MISS' : 'HIT');
    expect(ids.map((id) => counter.count(`item:${id}`))).toEqual([1, 2, 2, 1, 1, 1]);
  });

  it("caches credentialed requests per token with vary: ['header:authorization'], never per cookie", async () => {
    const a1 = await request(url).get('/by-token').set('Authorization', 'Bearer alice').expect('X-Cache', 'MISS');
    const a2 = await request(url).get('/by-token').set('Authorization', 'Bearer alice').expect('X-Cache', 'HIT');
    expect(a2.body).toEqual(a1.body);
    const b1 = await request(url).get('/by-token').set('Authorization', 'Bearer bob').expect('X-Cache', 'MISS');
    expect(b1.body).not.toEqual(a1.body);
    await request(url).get('/by-token').set('Cookie', 'sid=1').expect('X-Cache', 'BYPASS');
    expect(counter.count('by-token')).toBe(3);
  });

  it('never puts a vary header value (a token) into a store key', async () => {
    const token = 'Bearer s3cr3t-t0ken-value';
    await request(url).get('/by-token').set('Authorization', token).expect('X-Cache', 'MISS');
    await request(url).get('/by-language').set('Accept-Language', 'fr-CH').expect('X-Cache', 'MISS');
    const keys = [...app.get(CacheService).memory.keys];
    expect(keys.some((k) => k.startsWith('/by-token|authorization:'))).toBe(true);
    expect(keys.join('\n')).not.toMatch(/s3cr3t|fr-CH/);
  });

  it("keys by a header with vary: ['header:<name>']", async () => {
    await request(url).get('/by-language').set('Accept-Language', 'fr').expect('X-Cache', 'MISS');
    await request(url).get('/by-language').set('Accept-Language', 'fr').expect('X-Cache', 'HIT');
    await request(url).get('/by-language').set('Accept-Language', 'de').expect('X-Cache', 'MISS');
    await request(url).get('/by-language').expect('X-Cache', 'MISS');
    expect(counter.count('by-language')).toBe(3);
  });

  it('keeps serving STALE while refreshes fail (stale-if-error), until ttl + staleWhileRevalidate', async () => {
    const started = Date.now();
    const first = await request(url).get('/stale-if-error').expect(200).expect('X-Cache', 'MISS');
    await sleep(300); // ttl 200: now stale
    const stale = await request(url).get('/stale-if-error').expect(200).expect('X-Cache', 'STALE');
    expect(stale.body).toEqual(first.body);
    await vi.waitFor(() => expect(counter.count('stale-if-error')).toBe(2)); // the refresh ran and failed
    await request(url).get('/stale-if-error').expect(200).expect('X-Cache', 'STALE');
    await vi.waitFor(() => expect(app.get(CacheService).stats().errors).toBeGreaterThan(0));
    await sleep(Math.max(0, started + 1200 + 300 - Date.now())); // past ttl + staleWhileRevalidate
    await request(url).get('/stale-if-error').expect(503);
  });

  it('makes one upstream call for 1 s of sequential stale requests while the upstream is down', async () => {
    await withClock(async (at) => {
      await request(url).get('/upstream-down').expect(200).expect('X-Cache', 'MISS');
      // ttl 100: stale from 100 ms on, for ten minutes; one request every 10 ms for a second
      for (let ms = 200; ms < 1200; ms += 10) {
        at(ms);
        const res = await request(url).get('/upstream-down').expect(200).expect('X-Cache', 'STALE');
        expect(res.body).toEqual({ fresh: true }); // stale-if-error
      }
    });
    await vi.waitFor(() => expect(app.get(CacheService).stats().refreshErrors).toBe(1));
    expect(counter.count('upstream-down')).toBe(2); // the first answer and one refresh
  });

  it('waits 1 s after a failed refresh, then twice as long after each further failure', async () => {
    const service = app.get(CacheService);
    await withClock(async (setClock) => {
      const stale = async (at: number, refreshes: number) => {
        setClock(at);
        await request(url).get('/upstream-down').expect(200).expect('X-Cache', 'STALE');
        await vi.waitFor(() => expect(service.stats().refreshErrors).toBe(refreshes));
        expect(counter.count('upstream-down')).toBe(1 + refreshes);
      };
      await request(url).get('/upstream-down').expect(200).expect('X-Cache', 'MISS');
      await stale(200, 1); // the first refresh fails at about t0 + 200
      await stale(1150, 1); // less than 1 s later: no refresh
      await stale(1250, 2); // 1 s later: refreshed again, fails
      await stale(3200, 2); // less than 2 s later: none
      await stale(3300, 3); // 2 s later: the third
      await stale(7250, 3); // then 4 s
      await stale(7350, 4); // then 8 s
      await stale(15_300, 4);
      await stale(15_400, 5); // then 16 s
      await stale(31_350, 5);
      await stale(31_450, 6); // then 30 s, not 32: the cap
      await stale(61_400, 6);
      await stale(61_500, 7);
      await stale(91_450, 7);
      await stale(91_550, 8);
    });
  });

  it('never caches a StreamableFile', async () => {
    const first = await request(url).get('/file').expect(200).expect('X-Cache', 'BYPASS');
    expect(Buffer.from(first.body).toString() || first.text).toBe('file body');
    await request(url).get('/file').expect(200).expect('X-Cache', 'BYPASS');
    expect(counter.count('file')).toBe(2);
  });

  it('replays the status, content type and headers the handler set to every request it served, and on hits', async () => {
    const responses = await Promise.all(Array.from({ length: 100 }, () => request(url).get('/typed')));
    responses.push(await request(url).get('/typed').expect('X-Cache', 'HIT'));
    expect(counter.count('typed')).toBe(1);
    for (const res of responses) {
      expect(res.status).toBe(201);
      expect(res.headers['content-type']).toMatch(/^text\/plain/);
      expect(res.headers['x-typed']).toBe('1');
      expect(res.text).toBe('<script>alert(1)</script>');
    }
  });

  it.each(['no-store', 'private'])('never stores nor shares a response marked Cache-Control: %s', async (route) => {
    const responses = await Promise.all(Array.from({ length: 5 }, () => request(url).get(`/${route}`)));
    responses.push(await request(url).get(`/${route}`));
    for (const res of responses) {
      expect(res.status).toBe(200);
      expect(res.headers['x-cache']).toBe('BYPASS');
      expect(res.headers['cache-control']).toMatch(route);
    }
    expect(counter.count(route)).toBe(6);
    expect(new Set(responses.map((res) => (res.body as { calls: number }).calls)).size).toBe(6);
  });

  it('never stores nor shares a response that sets a cookie', async () => {
    const responses = await Promise.all(Array.from({ length: 5 }, () => request(url).get('/cookie')));
    responses.push(await request(url).get('/cookie'));
    const cookies = responses.map((res) => String(res.headers['set-cookie']));
    expect(new Set(cookies).size).toBe(6);
    for (const res of responses) expect(res.headers['x-cache']).toBe('BYPASS');
    expect(counter.count('cookie')).toBe(6);
  });

  it('serves a value stored under a route key by other code (CacheService.set) as it is', async () => {
    await app.get(CacheService).set('/public', { primed: true }, 10_000);
    const res = await request(url).get('/public').expect(200).expect('X-Cache', 'HIT');
    expect(res.body).toEqual({ primed: true });
    expect(counter.count('public')).toBe(0);
  });
});

describe.each(HTTP_ADAPTERS)('@Cached memory and outages (%s)', (adapter) => {
  let app: INestApplication | undefined;

  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  async function boot(cache: Parameters<typeof createCacheAppModule>[0]) {
    const fixture = createCacheAppModule(cache);
    app = await bootstrapApp(adapter, fixture.module);
    await app.listen(0, '127.0.0.1');
    return { url: await app.getUrl(), counter: fixture.counter, service: app.get(CacheService) };
  }

  it('keeps at most maxEntries entries in memory, evicting the least recently used', async () => {
    const { url, counter, service } = await boot({ maxEntries: 3 });
    for (let i = 1; i <= 5; i++) await request(url).get(`/n/${i}`).expect('X-Cache', 'MISS');
    expect(service.memory.size).toBeLessThanOrEqual(3);
    await request(url).get('/n/5').expect('X-Cache', 'HIT');
    await request(url).get('/n/1').expect('X-Cache', 'MISS');
    expect(counter.count('n:1')).toBe(2);
  });

  it('evicts by tag entries whose tag list an LRU would have dropped (tags live outside the L1)', async () => {
    const { url } = await boot({ maxEntries: 2 });
    await request(url).get('/items/1').expect('X-Cache', 'MISS');
    await request(url).get('/items/2').expect('X-Cache', 'MISS');
    await request(url).get('/items/2').expect('X-Cache', 'HIT');
    await request(url).post('/items').expect(201);
    await request(url).get('/items/2').expect('X-Cache', 'MISS');
  });

  it('expires a @CacheTTL(0) route after the module ttl instead of keeping it forever', async () => {
    const { url, counter } = await boot({ ttl: 100 });
    await withClock(async (at) => {
      await request(url).get('/ttl-zero').expect('X-Cache', 'MISS');
      at(90);
      await request(url).get('/ttl-zero').expect('X-Cache', 'HIT');
      at(110);
      await request(url).get('/ttl-zero').expect('X-Cache', 'MISS');
    });
    expect(counter.count('ttl-zero')).toBe(2);
  });

  it('frees expired entries without being asked for them', async () => {
    const { url, service } = await boot({});
    await request(url).get('/short').expect('X-Cache', 'MISS');
    expect(service.memory.size).toBe(1);
    await vi.waitFor(() => expect(service.memory.size).toBe(0), { timeout: 5000, interval: 100 });
  });

  const outages = [
    ['a throwing store (Keyv swallows the error)', () => throwingStore(false)],
    ['a throwing store (throwOnErrors: true)', () => throwingStore(true)],
    ['a hanging store', () => hangingStore()],
  ] as const;

  it.each(outages)('answers 200 within storeTimeout plus margin with %s', async (_name, store) => {
    const storeTimeout = 200;
    const { url, counter, service } = await boot({ stores: [store()], storeTimeout });
    const started = Date.now();
    const res = await request(url).get('/public').expect(200);
    expect(Date.now() - started).toBeLessThan(storeTimeout + 1500);
    expect(res.body).toEqual({ calls: 1 });
    await request(url).get('/public').expect(200).expect('X-Cache', 'HIT');
    await request(url).get('/items').expect(200);
    await request(url).post('/items').expect(201);
    expect(counter.count('public')).toBe(1);
    expect(service.stats().errors).toBeGreaterThan(0);
  });
});

describe.each(HTTP_ADAPTERS)('@Cached with hostile values from handlers (%s)', (adapter) => {
  let app: INestApplication;
  let counter: CallCounter;
  let logger: RecordingLogger;
  let url: string;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  beforeEach(async () => {
    process.on('unhandledRejection', onUnhandled);
    const fixture = createCacheAppModule();
    counter = fixture.counter;
    logger = new RecordingLogger();
    app = await bootstrapApp(adapter, fixture.module, undefined, (nest) => nest.useLogger(logger));
    await app.listen(0, '127.0.0.1');
    url = await app.getUrl();
  });

  afterEach(async () => {
    await app.close();
    process.off('unhandledRejection', onUnhandled);
    expect(unhandled).toEqual([]);
    unhandled.length = 0;
  });

  /** What the cache itself logged (its lines name their context). */
  const cacheLines = () => logger.lines.filter((line) => /CacheService|ResponseCacheInterceptor/.test(line));

  it.each(Object.keys(HOSTILE_VALUES))('fails only the requests of a handler that throws %s', async (kind) => {
    const responses = await Promise.all(Array.from({ length: 5 }, () => request(url).get(`/hostile/${kind}`)));
    for (const res of responses) {
      expect(res.status).toBe(500);
      expect(res.headers['x-cache']).toBe('BYPASS');
    }
    expect(counter.count(`hostile:${kind}`)).toBe(1); // the waiting requests shared its failure
    await request(url).get(`/hostile/${kind}`).expect(500); // nothing was stored
    expect(counter.count(`hostile:${kind}`)).toBe(2);
    await request(url).get('/public').expect(200).expect('X-Cache', 'MISS');
    expect(cacheLines()).toEqual([]);
  });

  it('fails only the request whose handler returns a thenable with a throwing then getter', async () => {
    await request(url).get('/hostile-thenable').expect(500).expect('X-Cache', 'BYPASS');
    await request(url).get('/hostile-thenable').expect(500);
    expect(counter.count('hostile-thenable')).toBe(2);
    await request(url).get('/public').expect(200);
  });

  it.each(Object.keys(HOSTILE_VALUES))(
    'serves STALE when a refresh throws %s, with one clean log line',
    async (kind) => {
      await request(url).get(`/hostile-refresh/${kind}`).expect(200).expect('X-Cache', 'MISS');
      await sleep(200); // stale
      const res = await request(url).get(`/hostile-refresh/${kind}`).expect(200).expect('X-Cache', 'STALE');
      expect(res.body).toEqual({ fresh: true });
      await vi.waitFor(() => expect(app.get(CacheService).stats().refreshErrors).toBe(1));
      await request(url).get(`/hostile-refresh/${kind}`).expect(200).expect('X-Cache', 'STALE');
      const lines = cacheLines();
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^warn: Background refresh of cache key "/hostile-refresh/${kind}" failed`));
      expect(lines[0]).not.toMatch(/<\w+>/); // every part of it was text
    },
  );
});
