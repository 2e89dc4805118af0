import { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { App } from 'supertest/types.js';
import { AppModule as ConfigFromEnvModule } from './../src/docs/config-from-env.module.js';
import { AppModule as HealthModule } from './../src/docs/health.module.js';

// The documentation's own samples (docs/configuration.md, docs/observability.md), as a user copies them.
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
});
