import { INestApplication } from '@nestjs/common';
import { Test, TestingModule } from '@nestjs/testing';
import request from 'supertest';
import { App } from 'supertest/types';
import { JobRegistry } from 'nestjs-concurrency';
import { AppModule } from './../src/app.module';

/** Polls `check` until it returns true; generous bound, so a slow machine passes and a broken app fails. */
async function until(check: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('nestjs-concurrency in a Nest 11 CommonJS app (e2e)', () => {
  let app: INestApplication<App>;

  beforeAll(async () => {
    const moduleFixture: TestingModule = await Test.createTestingModule({
      imports: [AppModule],
    }).compile();

    app = moduleFixture.createNestApplication();
    await app.init();
  });

  afterAll(async () => {
    await app.close();
  });

  it('ticks the @Interval job and lists it in the JobRegistry', async () => {
    await until(async () => (await request(app.getHttpServer()).get('/status')).body.ticks >= 2, 'two ticks');
    const job = app.get(JobRegistry).get('heartbeat');
    expect(job.kind).toBe('interval');
    expect(job.runs).toBeGreaterThanOrEqual(2);
  }, 20_000);

  it('restarts a supervised task that failed and runs it to the end', async () => {
    const started = await request(app.getHttpServer()).post('/tasks/report').expect(202);
    expect(started.body.id).toEqual(expect.any(String));
    await until(
      async () => (await request(app.getHttpServer()).get('/status')).body.finished.some((t) => t.name === 'report'),
      'the task "report" to finish',
    );
    const { body } = await request(app.getHttpServer()).get('/status');
    expect(body.finished).toContainEqual({ name: 'report', attempt: 2 });
  }, 20_000);

  it('fans out with FanOut.map and keeps input order', async () => {
    const { body } = await request(app.getHttpServer()).get('/squares?n=6').expect(200);
    expect(body).toEqual([1, 4, 9, 16, 25, 36]);
  });

  it('computes an @Cached route once: MISS, then HIT with the same body', async () => {
    const first = await request(app.getHttpServer()).get('/cached').expect(200);
    expect(first.headers['x-cache']).toBe('MISS');
    const second = await request(app.getHttpServer()).get('/cached').expect(200);
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.body).toEqual(first.body);
  });
});
