import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { MailerService } from '../../sample-app/newsletters/mailer.service.js';
import { bootSample, testConfig } from '../fixtures/sample-app.js';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';

describe.skipIf(!redisAvailable)('sample app with REDIS_URL: a durable newsletter send (real redis-server)', () => {
  let redis: RedisServer;
  const apps: INestApplication[] = [];

  beforeAll(async () => {
    redis = await RedisServer.start();
  });
  afterAll(async () => {
    await Promise.all(apps.map((app) => app.close()));
    await redis?.stop();
  });

  it('survives a restart: the send cut short by app.close() is finished by the next instance', async () => {
    // 20 emails x 400 ms outlast the 5 s drain of app.close().
    const config = testConfig({ redisUrl: redis.url, mailerDelayMs: 400 });
    const first = await bootSample('express', config);
    const accepted = await request(first.getHttpServer()).post('/newsletters/7/send').expect(202);
    expect(accepted.body).toMatchObject({ supervisor: 'durable', recipients: 20, taskId: expect.any(String) });
    const { taskId } = accepted.body as { taskId: string };

    const firstMailer = first.get(MailerService);
    await vi.waitFor(() => expect(firstMailer.sent).toBeGreaterThan(0), { timeout: 10_000 });
    const tasks = await request(first.getHttpServer()).get('/tasks').expect(200);
    expect(tasks.body).toContainEqual(
      expect.objectContaining({ id: taskId, supervisor: 'durable', name: 'newsletter.send', status: 'running' }),
    );

    await first.close();
    expect(firstMailer.sent).toBeLessThan(20);

    const second = await bootSample('fastify', config);
    apps.push(second);
    const secondMailer = second.get(MailerService);
    // At least once: the new instance sends the newsletter (its mailer has no record of the first one's emails).
    await vi.waitFor(() => expect(secondMailer.sent).toBe(20), { timeout: 30_000, interval: 100 });
    await vi.waitFor(
      async () => {
        const { body } = await request(second.getHttpServer()).get('/tasks').expect(200);
        expect(body.map((t: { id: string }) => t.id)).not.toContain(taskId);
      },
      { timeout: 10_000 },
    );
  }, 60_000);

  it('terminates a durable send with DELETE /tasks/:id', async () => {
    const app = apps[0] ?? (await bootSample('express', testConfig({ redisUrl: redis.url, mailerDelayMs: 400 })));
    if (!apps.includes(app)) apps.push(app);
    const { body } = await request(app.getHttpServer()).post('/newsletters/8/send').expect(202);
    await vi.waitFor(
      async () => {
        const tasks = await request(app.getHttpServer()).get('/tasks').expect(200);
        expect(tasks.body).toContainEqual(expect.objectContaining({ id: body.taskId, status: 'running' }));
      },
      { timeout: 10_000 },
    );
    await request(app.getHttpServer())
      .delete(`/tasks/${body.taskId}`)
      .expect(200, { id: body.taskId, supervisor: 'durable', terminated: true });
    const tasks = await request(app.getHttpServer()).get('/tasks').expect(200);
    expect(tasks.body.map((t: { id: string }) => t.id)).not.toContain(body.taskId);
  }, 30_000);
});
