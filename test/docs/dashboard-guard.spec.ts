import { readFileSync } from 'node:fs';
import { type INestApplication, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ConcurrencyModule } from 'nestjs-concurrency';
import request from 'supertest';
// The guard of docs/observability.md, as written there.
import { DashboardGuard } from './samples/dashboard-guard.js';

describe('the dashboard guard recipe of docs/observability.md (HTTP Basic, usable from a browser)', () => {
  let app: INestApplication;
  const saved = process.env.DASHBOARD_PASSWORD;

  beforeAll(async () => {
    process.env.DASHBOARD_PASSWORD = 'secret';
    @Module({ imports: [ConcurrencyModule.forRoot({ dashboard: { guard: DashboardGuard } })] })
    class AppModule {}
    app = await NestFactory.create(AppModule, { logger: false, abortOnError: false });
    await app.init();
  });
  afterAll(async () => {
    await app.close();
    process.env.DASHBOARD_PASSWORD = saved;
  });

  it('is the same guard as the page shows', () => {
    const read = (path: string) => readFileSync(new URL(path, import.meta.url), 'utf8');
    const sample = read('./samples/dashboard-guard.ts');
    const guard = sample.slice(sample.indexOf('/**'));
    expect(read('../../docs/observability.md')).toContain(guard.trim());
  });

  it('asks the browser for a password (401 with WWW-Authenticate: Basic)', async () => {
    const res = await request(app.getHttpServer()).get('/_concurrency').expect(401);
    expect(res.headers['www-authenticate']).toBe('Basic realm="concurrency"');
    await request(app.getHttpServer()).get('/_concurrency').auth('ops', 'wrong').expect(401);
  });

  it('serves the page and its snapshot with the right password', async () => {
    await request(app.getHttpServer()).get('/_concurrency').auth('ops', 'secret').expect(200);
    await request(app.getHttpServer()).get('/_concurrency/snapshot').auth('ops', 'secret').expect(200);
  });
});
