import type { INestApplication, LoggerService, Type } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { ConcurrencyModule, type ConcurrencyModuleOptions, type DurableModuleOptions } from 'nestjs-concurrency';

let counter = 0;
/** A Redis key prefix of its own for each test: the tests of a file share one redis-server. */
export const uniquePrefix = () => `t${process.pid}-${++counter}-${Date.now().toString(36)}`;

/** Log lines of one app, by level, for assertions on what a user would read. */
export class CapturingLogger implements LoggerService {
  readonly lines: Array<{ level: string; message: string }> = [];
  log(message: unknown) {
    this.lines.push({ level: 'log', message: String(message) });
  }
  error(message: unknown) {
    this.lines.push({ level: 'error', message: String(message) });
  }
  warn(message: unknown) {
    this.lines.push({ level: 'warn', message: String(message) });
  }
  debug() {}
  verbose() {}
  text(level?: string): string {
    return this.lines
      .filter((l) => !level || l.level === level)
      .map((l) => l.message)
      .join('\n');
  }
}

export interface DurableApp {
  app: INestApplication;
  logger: CapturingLogger;
}

/** One app instance with durable tasks, as a user would configure it. */
export async function bootDurable(
  durable: DurableModuleOptions,
  providers: Type[] = [],
  options: Omit<ConcurrencyModuleOptions, 'durable'> = {},
): Promise<DurableApp> {
  const moduleRef = await Test.createTestingModule({
    imports: [ConcurrencyModule.forRoot({ ...options, durable })],
    providers,
  }).compile();
  const logger = new CapturingLogger();
  const app = moduleRef.createNestApplication({ logger });
  await app.init();
  return { app, logger };
}

/** Boot that is expected to fail: the error it failed with. */
export async function bootError(options: ConcurrencyModuleOptions, providers: Type[] = []): Promise<unknown> {
  try {
    const moduleRef = await Test.createTestingModule({
      imports: [ConcurrencyModule.forRoot(options)],
      providers,
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false, abortOnError: false });
    await app.init();
    await app.close();
  } catch (error) {
    return error;
  }
  throw new Error('boot did not fail');
}
