import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  ConcurrencyHealthIndicator,
  ConcurrencyModule,
  type ConcurrencyModuleAsyncOptions,
  type ConcurrencyModuleOptions,
} from 'nestjs-concurrency';

describe('names the documentation uses', () => {
  it('ConcurrencyModuleAsyncOptions types what forRootAsync takes, dashboard included', async () => {
    const options: ConcurrencyModuleAsyncOptions = {
      useFactory: (): ConcurrencyModuleOptions => ({ shutdownTimeout: Number('250') }),
    };
    expectTypeOf(ConcurrencyModule.forRootAsync).parameter(0).toEqualTypeOf<ConcurrencyModuleAsyncOptions>();
    @Module({ imports: [ConcurrencyModule.forRootAsync(options)] })
    class AppModule {}
    const app = await NestFactory.createApplicationContext(AppModule, { logger: false, abortOnError: false });
    await app.close();
  });

  it("isHealthy(key) answers like terminus' indicators: check()'s result under the given key", async () => {
    @Module({ imports: [ConcurrencyModule.forRoot()] })
    class AppModule {}
    const app = await NestFactory.createApplicationContext(AppModule, { logger: false, abortOnError: false });
    const indicator = app.get(ConcurrencyHealthIndicator);
    expect(await indicator.isHealthy('jobs-and-tasks')).toEqual({ 'jobs-and-tasks': { status: 'up' } });
    expect(await indicator.isHealthy()).toEqual(await indicator.check());
    await app.close();
  });
});
