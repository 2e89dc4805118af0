import type { INestApplication, LoggerService, Type } from '@nestjs/common';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ConcurrencyModule, type ConcurrencyModuleOptions } from 'nestjs-concurrency';

/** A logger that records what it is told, for asserting on job failure logs. */
export class RecordingLogger implements LoggerService {
  readonly errors: string[] = [];
  readonly warnings: string[] = [];
  log(): void {}
  debug(): void {}
  verbose(): void {}
  error(message: unknown): void {
    this.errors.push(String(message));
  }
  warn(message: unknown): void {
    this.warnings.push(String(message));
  }
}

/** Boots an application with ConcurrencyModule and the given job providers (timers start at init). */
export async function bootJobs(
  providers: Type[],
  options: ConcurrencyModuleOptions = {},
  logger: LoggerService | false = false,
): Promise<INestApplication> {
  @Module({ imports: [ConcurrencyModule.forRoot(options)], providers })
  class AppModule {}
  const app = await NestFactory.create(AppModule, { abortOnError: false, logger });
  await app.init();
  return app;
}

/** Boots like `bootJobs` and returns the error `app.init()` failed with. */
export async function bootError(providers: Type[], options: ConcurrencyModuleOptions = {}): Promise<Error> {
  let app: INestApplication | undefined;
  try {
    app = await bootJobs(providers, options);
  } catch (error) {
    return error as Error;
  }
  await app.close();
  throw new Error('expected the application to fail to boot');
}

/** `app.close()` under fake timers: advances the clock until the drain of runs in progress is over. */
export async function closeFaked(app: INestApplication): Promise<void> {
  let closed = false;
  const closing = app.close().then(() => (closed = true));
  while (!closed) await vi.advanceTimersByTimeAsync(50);
  await closing;
}
