import { AsyncLocalStorage } from 'node:async_hooks';
import { Controller, Get, type INestApplication, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Cached, ConcurrencyModule } from 'nestjs-concurrency';
import request from 'supertest';

const als = new AsyncLocalStorage<string>();
const computedFor: string[] = [];

@Controller()
class TenantController {
  @Get('report')
  @Cached({ ttl: 100, staleWhileRevalidate: 10_000 })
  report() {
    computedFor.push(`${als.getStore()}`);
    return { computed: computedFor.length };
  }
}

@Module({ imports: [ConcurrencyModule.forRoot()], controllers: [TenantController] })
class AppModule {}

/** A background refresh runs in the context of the request that found the entry stale (it started the refresh). */
describe('async context of a cache refresh', () => {
  let app: INestApplication;
  beforeEach(async () => {
    computedFor.length = 0;
    app = await NestFactory.create(AppModule, { logger: false });
    app.use((req: { headers: Record<string, string> }, _res: unknown, next: () => void) =>
      als.run(req.headers['x-tenant'] ?? 'none', next),
    );
    await app.listen(0, '127.0.0.1');
  });
  afterEach(async () => {
    await app.close();
  });

  it("the refresh sees the stale request's value, not the first request's", async () => {
    const url = await app.getUrl();
    await request(url).get('/report').set('x-tenant', 'first').expect('X-Cache', 'MISS');
    await new Promise((resolve) => setTimeout(resolve, 300)); // past the 100 ms TTL, within staleWhileRevalidate
    await request(url).get('/report').set('x-tenant', 'stale-reader').expect('X-Cache', 'STALE');
    await vi.waitFor(() => expect(computedFor).toHaveLength(2), { timeout: 5000 });
    expect(computedFor).toEqual(['first', 'stale-reader']);
  });
});
