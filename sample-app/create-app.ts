import { type INestApplication, ValidationPipe } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { AppModule } from './app.module.js';
import { SafeBodyPipe } from './common/safe-body.pipe.js';

export type HttpAdapterName = 'express' | 'fastify';

/**
 * Settings shared by `main.ts` and the e2e tests: validation on every route (400 naming the field). Bodies that nest
 * too deep or name the prototype chain are refused first, before class-transformer walks them.
 */
export function configureApp(app: INestApplication): INestApplication {
  return app.useGlobalPipes(
    new SafeBodyPipe(),
    new ValidationPipe({ transform: true, whitelist: true, forbidNonWhitelisted: true }),
  );
}

/** Creates the sample app on the chosen HTTP adapter (`HTTP_ADAPTER=express|fastify`, default express). */
export async function createApp(adapter: HttpAdapterName = 'express'): Promise<INestApplication> {
  const app = await NestFactory.create(AppModule, adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(), {
    abortOnError: false,
  });
  // SIGTERM/SIGINT run the shutdown hooks: timers stop, supervisors drain running work, then abort what is left.
  return configureApp(app).enableShutdownHooks();
}

export function adapterFromEnv(value = process.env.HTTP_ADAPTER): HttpAdapterName {
  if (value === undefined || value === '' || value === 'express') return 'express';
  if (value === 'fastify') return 'fastify';
  throw new Error(`HTTP_ADAPTER must be "express" or "fastify", got "${value}".`);
}
