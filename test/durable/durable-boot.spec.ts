import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Injectable, Scope } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Cluster } from 'ioredis';
import {
  ConcurrencyModule,
  ConcurrencyOptionsError,
  DurableSupervisor,
  InvalidTaskHandlerError,
  TaskHandler,
} from 'nestjs-concurrency';
import { bootError, CapturingLogger } from './helpers.js';

// Boot validation happens before any connection: these tests need no Redis.
const connection = 'redis://127.0.0.1:1';

describe('durable: options and handlers are checked at boot', () => {
  it.each([
    [{ connection: 'http://example.com' }, 'durable.connection', 'redis:// or rediss:// URL'],
    [{ connection: 42 }, 'durable.connection', 'got 42'],
    [{}, 'durable.connection', 'got undefined'],
    [{ connection, prefix: '' }, 'durable.prefix', 'non-empty string'],
    [{ connection, concurrency: 0 }, 'durable.concurrency', 'an integer >= 1'],
    [{ connection, concurrency: 1.5 }, 'durable.concurrency', 'an integer >= 1'],
    [{ connection, workers: 'no' }, 'durable.workers', 'true or false'],
    [{ connection, stalledTimeout: 10 }, 'durable.stalledTimeout', '>= 1000'],
    [{ connection, storeTimeout: 0 }, 'durable.storeTimeout', '> 0'],
    [{ connection, retries: 3 }, 'durable.retries', 'Allowed in "durable"'],
  ])('refuses durable %j naming the option', async (durable, option, text) => {
    const error = (await bootError({ durable: durable as never })) as ConcurrencyOptionsError;
    expect(error).toBeInstanceOf(ConcurrencyOptionsError);
    expect(error.option).toBe(option);
    expect(error.message).toContain(option);
    expect(error.message).toContain(text);
  });

  it('refuses an ioredis Cluster as durable.connection, naming the option', async () => {
    const cluster = new Cluster([{ host: '127.0.0.1', port: 1 }], { lazyConnect: true });
    try {
      const error = (await bootError({ durable: { connection: cluster } })) as ConcurrencyOptionsError;
      expect(error).toBeInstanceOf(ConcurrencyOptionsError);
      expect(error.option).toBe('durable.connection');
      expect(error.message).toContain('Cluster is not supported');
    } finally {
      cluster.disconnect();
    }
  });

  it('does not echo a connection string that is not a URL (it may hold a password)', async () => {
    const error = (await bootError({ durable: { connection: 'secret-password' } })) as Error;
    expect(error.message).not.toContain('secret-password');
  });

  it('fails boot on a duplicate task name, naming both methods', async () => {
    @Injectable()
    class Mailer {
      @TaskHandler('mail.send')
      send() {}
    }
    @Injectable()
    class Newsletter {
      @TaskHandler('mail.send')
      deliver() {}
    }
    const error = (await bootError({ durable: { connection } }, [Mailer, Newsletter])) as Error;
    expect(error).toBeInstanceOf(InvalidTaskHandlerError);
    expect(error.message).toContain('"mail.send"');
    expect(error.message).toContain('Mailer.send()');
    expect(error.message).toContain('Newsletter.deliver()');
  });

  it('boots with a handler provider also registered under an alias (useExisting): one handler', async () => {
    @Injectable()
    class Mailer {
      @TaskHandler('mail.send')
      send() {}
    }
    const moduleRef = await Test.createTestingModule({
      imports: [ConcurrencyModule.forRoot({ durable: { connection, workers: false } })],
      providers: [Mailer, { provide: 'MAILER', useExisting: Mailer }],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false, abortOnError: false });
    await expect(app.init()).resolves.toBe(app);
    await app.close();
  });

  it('fails boot on a handler of a request-scoped provider', async () => {
    @Injectable({ scope: Scope.REQUEST })
    class PerRequest {
      @TaskHandler('report.build')
      build() {}
    }
    const error = (await bootError({ durable: { connection } }, [PerRequest])) as Error;
    expect(error).toBeInstanceOf(InvalidTaskHandlerError);
    expect(error.message).toContain('PerRequest.build()');
    expect(error.message).toContain('request-scoped');
  });

  it.each([
    ['has:colon', {}, 'task name "has:colon"'],
    ['ok', { maxRestarts: -1 }, '"maxRestarts"'],
    ['ok', { restart: 'permanent' }, '"restart"'],
    ['ok', { timeout: 0 }, '"timeout"'],
    ['ok', { retries: 2 }, '"retries"'],
  ])('fails boot on @TaskHandler(%j, %j)', async (name, options, text) => {
    @Injectable()
    class Jobs {
      @TaskHandler(name, options as never)
      run() {}
    }
    const error = (await bootError({ durable: { connection } }, [Jobs])) as Error;
    expect(error).toBeInstanceOf(InvalidTaskHandlerError);
    expect(error.message).toContain(text);
    expect(error.message).toContain('Jobs.run()');
  });
});

describe('durable: off unless configured', () => {
  it('registers no DurableSupervisor without the durable option', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [ConcurrencyModule.forRoot({})] }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    expect(() => app.get(DurableSupervisor)).toThrow();
    await app.close();
  });

  it('with forRootAsync and no durable option, the supervisor says how to configure it, in forRootAsync terms too', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [ConcurrencyModule.forRootAsync({ useFactory: () => ({}) })],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    const error = (await app
      .get(DurableSupervisor)
      .startChild('x', {})
      .catch((e: unknown) => e)) as Error;
    expect(error.message).toContain('durable: { connection');
    expect(error.message).toContain('forRootAsync');
    await app.close();
  });

  it('fails boot on a @TaskHandler with forRoot() and no durable option, naming the class and method', async () => {
    @Injectable()
    class Mailer {
      @TaskHandler('mail.send')
      send() {}
    }
    const error = (await bootError({}, [Mailer])) as Error;
    expect(error).toBeInstanceOf(InvalidTaskHandlerError);
    expect(error.message).toContain('Mailer.send()');
    expect(error.message).toContain('"durable"');
  });

  it('fails boot on a @TaskHandler with forRootAsync() options without durable, naming the class and method', async () => {
    @Injectable()
    class Mailer {
      @TaskHandler('mail.send')
      send() {}
    }
    const moduleRef = await Test.createTestingModule({
      imports: [ConcurrencyModule.forRootAsync({ useFactory: () => ({}) })],
      providers: [Mailer],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    const error = (await app.init().catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(InvalidTaskHandlerError);
    expect(error.message).toContain('@TaskHandler("mail.send") on Mailer.send() would never run');
    expect(error.message).toContain('durable: false');
    await app.close().catch(() => undefined);
  });

  it.each(['forRoot', 'forRootAsync'] as const)(
    'only warns about a @TaskHandler when durable tasks are off on purpose (durable: false, %s)',
    async (how) => {
      @Injectable()
      class Mailer {
        @TaskHandler('mail.send')
        send() {}
      }
      const module =
        how === 'forRoot'
          ? ConcurrencyModule.forRoot({ durable: false })
          : ConcurrencyModule.forRootAsync({ useFactory: () => ({ durable: false as const }) });
      const moduleRef = await Test.createTestingModule({ imports: [module], providers: [Mailer] }).compile();
      const logger = new CapturingLogger();
      const app = moduleRef.createNestApplication({ logger });
      await app.init();
      expect(logger.text('warn')).toContain('@TaskHandler("mail.send") on Mailer.send() will not run');
      await app.close();
    },
  );
});

describe('durable: bullmq stays optional', () => {
  it('is imported by lib/ only as types, and loaded by one dynamic import when durable is given', () => {
    const lib = fileURLToPath(new URL('../../lib/', import.meta.url));
    const offenders: string[] = [];
    const loaders: string[] = [];
    for (const file of readdirSync(lib, { recursive: true }) as string[]) {
      if (!file.endsWith('.ts')) continue;
      const source = readFileSync(join(lib, file), 'utf8');
      for (const line of source.split('\n')) {
        if (/from 'bullmq'/.test(line) && !/^import type /.test(line)) offenders.push(`${file}: ${line}`);
        if (/import\('bullmq'\)/.test(line)) loaders.push(file);
      }
    }
    expect(offenders).toEqual([]);
    expect(loaders).toEqual([join('durable', 'durable.loader.ts')]);
  });
});
