import { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { App } from 'supertest/types.js';
import { JobRegistry } from 'nestjs-concurrency';
import { ConcurrencyTester, ConcurrencyTestingModule } from 'nestjs-concurrency/testing';
import { AppModule } from './../src/app.module.js';
import { AppService } from './../src/app.service.js';

// The testing kit from the ES module build, under vitest: no polling, no sleeps.
describe('nestjs-concurrency/testing in a Nest 12 ES module app (vitest)', () => {
  let app: INestApplication<App>;
  let tester: ConcurrencyTester;

  beforeEach(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [AppModule, ConcurrencyTestingModule.forApp()],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    tester = app.get(ConcurrencyTester);
  });

  afterEach(async () => {
    await app.close();
  });

  it('idle() waits for a fire-and-forget task and its restart; failures() shows the failed attempt', async () => {
    await request(app.getHttpServer()).post('/tasks/report').expect(202);
    await tester.idle();
    const { body } = await request(app.getHttpServer()).get('/status').expect(200);
    expect(body.finished).toEqual([{ name: 'report', attempt: 2 }]);
    const failures = tester.failures();
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ kind: 'task', name: 'report' });
    expect(String(failures[0].error)).toContain('first attempt fails on purpose');
  });

  it('arms no timer at boot; advance() runs the ticks of the @Interval job', async () => {
    expect(app.get(JobRegistry).get('heartbeat').nextRunAt).toBeNull();
    await tester.advance(350);
    expect(app.get(AppService).ticks).toBe(3);
    expect(await tester.runJob('heartbeat')).toEqual({ status: 'fulfilled', value: undefined });
    expect(app.get(AppService).ticks).toBe(4);
  });

  it('cache.clear() makes a cached route compute again', async () => {
    await request(app.getHttpServer()).get('/cached').expect('X-Cache', 'MISS');
    await request(app.getHttpServer()).get('/cached').expect('X-Cache', 'HIT');
    await tester.cache.clear();
    await request(app.getHttpServer()).get('/cached').expect('X-Cache', 'MISS');
  });

  it('forRoot() gives the real module with test defaults to a test of one provider', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [ConcurrencyTestingModule.forRoot()],
      providers: [AppService],
    }).compile();
    const small = await moduleRef.createNestApplication({ logger: false }).init();
    try {
      const kit = small.get(ConcurrencyTester);
      expect(await small.get(AppService).squares(3)).toEqual([1, 4, 9]);
      await kit.advance(100);
      expect(small.get(AppService).ticks).toBe(1);
    } finally {
      await small.close();
    }
  });
});
