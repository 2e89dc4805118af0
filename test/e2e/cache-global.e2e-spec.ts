import type { INestApplication } from '@nestjs/common';
import { CacheService } from 'nestjs-concurrency';
import request from 'supertest';
import type { CallCounter } from '../fixtures/cache-app.js';
import { createGlobalCacheAppModule } from '../fixtures/cache-global-app.js';
import { bootstrapApp, HTTP_ADAPTERS } from './utils/bootstrap-app.js';

describe.each(HTTP_ADAPTERS)('ResponseCacheInterceptor as APP_INTERCEPTOR (%s)', (adapter) => {
  let app: INestApplication;
  let counter: CallCounter;
  let url: string;

  beforeEach(async () => {
    const fixture = createGlobalCacheAppModule();
    counter = fixture.counter;
    app = await bootstrapApp(adapter, fixture.module);
    await app.listen(0, '127.0.0.1');
    url = await app.getUrl();
  });

  afterEach(async () => {
    await app.close();
  });

  it('caches every GET route with the default TTL', async () => {
    await request(url).get('/plain').expect('X-Cache', 'MISS');
    await request(url).get('/plain').expect('X-Cache', 'HIT');
    expect(counter.count('plain')).toBe(1);
  });

  it('honours @CacheKey and @CacheTTL (ms) of @nestjs/cache-manager', async () => {
    await request(url).get('/keyed').expect('X-Cache', 'MISS');
    expect(await app.get(CacheService).get('custom-key')).toEqual({ calls: 1 });
    await request(url).get('/keyed').expect('X-Cache', 'HIT');
    await new Promise((resolve) => setTimeout(resolve, 300));
    await request(url).get('/keyed').expect('X-Cache', 'MISS');
    expect(counter.count('keyed')).toBe(2);
  });

  it('handles a @Cached route once although the interceptor is applied twice', async () => {
    await request(url).get('/decorated').expect('X-Cache', 'MISS');
    await request(url).get('/decorated').expect('X-Cache', 'HIT');
    expect(counter.count('decorated')).toBe(1);
    expect(app.get(CacheService).stats()).toMatchObject({ misses: 1, hits: 1, coalesced: 0 });
  });
});
