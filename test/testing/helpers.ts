import type { INestApplication, Type } from '@nestjs/common';
import { Test, type TestingModuleBuilder } from '@nestjs/testing';
import type { ConcurrencyModuleOptions } from 'nestjs-concurrency';
import {
  ConcurrencyTester,
  ConcurrencyTestingModule,
  type ConcurrencyTestingOptions,
} from 'nestjs-concurrency/testing';

/** A promise and the functions that settle it, for work that the test lets finish when it says so. */
export function deferred<T = void>(): {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (e: unknown) => void;
} {
  let resolve!: (value: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

/** Boots providers and controllers under `ConcurrencyTestingModule.forRoot(options, testing)`, as a user's test does. */
export async function bootKit(
  providers: Type[],
  options?: ConcurrencyModuleOptions,
  testing?: ConcurrencyTestingOptions,
  configure: (builder: TestingModuleBuilder) => TestingModuleBuilder = (builder) => builder,
  controllers: Type[] = [],
): Promise<{ app: INestApplication; tester: ConcurrencyTester }> {
  const moduleRef = await configure(
    Test.createTestingModule({
      imports: [ConcurrencyTestingModule.forRoot(options, testing)],
      providers,
      controllers,
    }),
  ).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  return { app, tester: app.get(ConcurrencyTester) };
}
