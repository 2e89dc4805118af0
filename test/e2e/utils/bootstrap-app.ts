import type { INestApplication, ModuleMetadata, Type } from '@nestjs/common';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { Test, type TestingModuleBuilder } from '@nestjs/testing';

export type HttpAdapterName = 'express' | 'fastify';
export const HTTP_ADAPTERS: HttpAdapterName[] = ['express', 'fastify'];

/**
 * Boots a Nest application for an e2e spec on the given HTTP adapter (as `nestjs/terminus`'s
 * `bootstrapTestingModule().withHttp(adapter)`), so every spec runs on Express and on Fastify.
 * `configure` adjusts the testing module (overrides); `setup` the application before `init()` (pipes, ...); `imports`
 * go beside `module` (e.g. `ConcurrencyTestingModule.forApp()`).
 */
export async function bootstrapApp(
  adapter: HttpAdapterName,
  module: Type,
  configure?: (builder: TestingModuleBuilder) => TestingModuleBuilder,
  setup?: (app: INestApplication) => void,
  imports: NonNullable<ModuleMetadata['imports']> = [],
): Promise<INestApplication> {
  let builder = Test.createTestingModule({ imports: [module, ...imports] });
  if (configure) builder = configure(builder);
  const moduleRef = await builder.compile();
  const app = moduleRef.createNestApplication(adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(), {
    logger: false,
  });
  setup?.(app);
  await app.init();
  if (adapter === 'fastify') await app.getHttpAdapter().getInstance().ready();
  return app;
}
