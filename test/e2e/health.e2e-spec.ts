import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { AppModule } from '../../sample-app/app.module.js';
import { bootstrapApp, HTTP_ADAPTERS } from './utils/bootstrap-app.js';

describe.each(HTTP_ADAPTERS)('sample app health (%s)', (adapter) => {
  let app: INestApplication;

  beforeAll(async () => {
    app = await bootstrapApp(adapter, AppModule);
  });

  afterAll(async () => {
    await app.close();
  });

  it('answers 200 on GET /health', async () => {
    const res = await request(app.getHttpServer()).get('/health').expect(200);
    expect(res.body).toEqual({ status: 'ok' });
  });
});
