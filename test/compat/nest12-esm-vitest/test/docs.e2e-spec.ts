import { INestApplication, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { App } from 'supertest/types.js';
import { AppModule as ConfigFromEnvModule } from './../src/docs/config-from-env.module.js';
import { AppModule as HealthModule } from './../src/docs/health.module.js';
import { DocumentsService, Storage } from './../src/docs/documents.service.js';
import { AppModule as SignupModule, Mailer, SignupService } from './../src/docs/signup.module.js';
import { ConcurrencyModule, getSupervisorToken, TaskSupervisor } from 'nestjs-concurrency';

// The documentation's own samples (docs/configuration.md, docs/observability.md, docs/supervisor.md, docs/fan-out.md),
// as a user copies them; only the samples' network calls (Mailer, Storage) are replaced, as a user's test would.
describe('the documented samples', () => {
  let app: INestApplication<App> | undefined;
  const saved = process.env.SHUTDOWN_TIMEOUT;

  afterEach(async () => {
    await app?.close();
    app = undefined;
    process.env.SHUTDOWN_TIMEOUT = saved;
  });

  it('forRootAsync with ConfigService boots with a number from the environment (a string there)', async () => {
    process.env.SHUTDOWN_TIMEOUT = '250';
    const moduleRef = await Test.createTestingModule({ imports: [ConfigFromEnvModule] }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
  });

  it('the terminus health check answers 200 with the concurrency indicator up', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [HealthModule] }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    const { body } = await request(app.getHttpServer()).get('/health').expect(200);
    expect(body).toMatchObject({ status: 'ok', info: { concurrency: { status: 'up' } } });
  });

  it('supervisor: signup returns at once and the welcome email is sent by a child of the "emails" supervisor', async () => {
    const sent: string[] = [];
    const mailer = { sendWelcome: async (user: { email: string }) => void sent.push(user.email) };
    const moduleRef = await Test.createTestingModule({ imports: [SignupModule] })
      .overrideProvider(Mailer)
      .useValue(mailer)
      .compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    const emails = app.get<TaskSupervisor>(getSupervisorToken('emails'));
    const completed = new Promise<string | undefined>((resolve) =>
      emails.events.subscribe((event) => event.type === 'completed' && resolve(event.name)),
    );
    expect(app.get(SignupService).signup({ id: 'u1', email: 'ada@example.com' })).toEqual({ id: 'u1' });
    expect(sent).toEqual([]); // not yet: the child runs on a later tick
    expect(await completed).toBe('welcome:u1');
    expect(sent).toEqual(['ada@example.com']);
  });

  it('fan-out: map uploads every document, at most 8 at once, results in input order', async () => {
    let active = 0;
    let peak = 0;
    const storage = {
      put: async (doc: { id: string }) => {
        peak = Math.max(peak, ++active);
        await new Promise((resolve) => setTimeout(resolve, 5));
        active--;
        return doc.id;
      },
    };
    @Module({ imports: [ConcurrencyModule.forRoot()], providers: [DocumentsService, Storage] })
    class DocumentsModule {}
    const moduleRef = await Test.createTestingModule({ imports: [DocumentsModule] })
      .overrideProvider(Storage)
      .useValue(storage)
      .compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    const docs = Array.from({ length: 20 }, (_, i) => ({ id: `d${i}`, body: 'x' }));
    const ids = await app.get(DocumentsService).uploadAll(docs, new AbortController().signal);
    expect(ids).toEqual(docs.map((doc) => doc.id));
    expect(peak).toBeLessThanOrEqual(8);
    expect(peak).toBeGreaterThan(1);
  });
});
