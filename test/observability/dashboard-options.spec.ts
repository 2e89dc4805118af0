import { type CanActivate, Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { get } from 'node:http';
import request from 'supertest';
import {
  ConcurrencyModule,
  type ConcurrencyModuleOptions,
  ConcurrencyOptionsError,
  FanOut,
  getSupervisorToken,
  Interval,
  type TaskSupervisor,
  JobRegistry,
} from 'nestjs-concurrency';

@Injectable()
class AllowAll implements CanActivate {
  canActivate() {
    return true;
  }
}

async function bootError(module: ReturnType<typeof ConcurrencyModule.forRoot>): Promise<Error> {
  @Module({ imports: [module] })
  class AppModule {}
  try {
    const app = await NestFactory.create(AppModule, { logger: false, abortOnError: false });
    await app.close();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the application to fail to boot');
}

async function boot(module: ReturnType<typeof ConcurrencyModule.forRoot>) {
  @Module({ imports: [module] })
  class AppModule {}
  const app = await NestFactory.create(AppModule, { logger: false, abortOnError: false });
  await app.init();
  return app;
}

describe('the dashboard option', () => {
  it('fails boot naming dashboard.guard when no guard is given', async () => {
    const error = await bootError(ConcurrencyModule.forRoot({ dashboard: {} }));
    expect(error).toBeInstanceOf(ConcurrencyOptionsError);
    expect((error as ConcurrencyOptionsError).option).toBe('dashboard.guard');
    expect(error.message).toContain('guard: false');
  });

  it.each([
    ['dashboard.path', { path: 'a/../b', guard: false }],
    ['dashboard.path', { path: 42, guard: false }],
    ['dashboard.guard', { guard: 'admin' }],
    ['dashboard.readOnly', { guard: false, readOnly: 'yes' }],
    ['dashboard.theme', { guard: false, theme: 'dark' }],
  ])('fails boot naming %s for a bad value', async (option, dashboard) => {
    const error = await bootError(ConcurrencyModule.forRoot({ dashboard } as unknown as ConcurrencyModuleOptions));
    expect((error as ConcurrencyOptionsError).option).toBe(option);
    expect(error.message).toContain(option);
  });

  it('fails boot when forRootAsync useFactory returns dashboard (its routes are fixed at definition)', async () => {
    const error = await bootError(
      ConcurrencyModule.forRootAsync({ useFactory: () => ({ dashboard: { guard: false } }) }),
    );
    expect((error as ConcurrencyOptionsError).option).toBe('dashboard');
    expect(error.message).toContain('forRootAsync({ useFactory, dashboard');
  });

  it('serves nothing unless dashboard is given', async () => {
    const app = await boot(ConcurrencyModule.forRoot());
    try {
      await request(app.getHttpServer()).get('/_concurrency').expect(404);
      await request(app.getHttpServer()).get('/_concurrency/snapshot').expect(404);
    } finally {
      await app.close();
    }
  });

  it('serves the page and a snapshot at the configured path, given next to forRootAsync useFactory', async () => {
    const app = await boot(
      ConcurrencyModule.forRootAsync({
        useFactory: () => ({}),
        dashboard: { path: '/ops/concurrency/', guard: AllowAll },
      }),
    );
    try {
      const page = await request(app.getHttpServer()).get('/ops/concurrency').expect(200);
      expect(page.headers['content-type']).toContain('text/html');
      expect(page.headers['content-security-policy']).toContain("connect-src 'self'");
      const snapshot = await request(app.getHttpServer()).get('/ops/concurrency/snapshot').expect(200);
      expect(snapshot.body.supervisors.map((s: { name: string }) => s.name)).toEqual(
        expect.arrayContaining(['default', 'jobs']),
      );
      expect(snapshot.body.readOnly).toBe(false);
    } finally {
      await app.close();
    }
  });

  it('shows a failed job by its error message, never its stack', async () => {
    @Injectable()
    class Failing {
      @Interval(3_600_000, { name: 'failing' })
      run() {
        throw new Error('database unreachable');
      }
    }
    @Module({ imports: [ConcurrencyModule.forRoot({ dashboard: { guard: false } })], providers: [Failing] })
    class AppModule {}
    const app = await NestFactory.create(AppModule, { logger: false, abortOnError: false });
    await app.init();
    try {
      await app
        .get(JobRegistry)
        .trigger('failing')
        .catch(() => undefined);
      const res = await request(app.getHttpServer()).get('/_concurrency/snapshot').expect(200);
      expect(res.body.jobs[0]).toMatchObject({ name: 'failing', failures: 1, lastError: 'database unreachable' });
      expect(res.text).not.toContain('dashboard-options.spec');
      expect(res.text).not.toMatch(/\n\s+at /);
    } finally {
      await app.close();
    }
  });

  it('lists at most 100 children of a supervisor, with the total', async () => {
    const app = await boot(ConcurrencyModule.forRoot({ dashboard: { guard: false } }));
    let release!: () => void;
    const parked = new Promise<void>((resolve) => (release = resolve));
    try {
      const sup = app.get<TaskSupervisor>(getSupervisorToken('default'));
      for (let i = 0; i < 150; i++) sup.startChild(() => parked, { name: `parked-${i}` });
      const res = await request(app.getHttpServer()).get('/_concurrency/snapshot').expect(200);
      const entry = res.body.supervisors.find((s: { name: string }) => s.name === 'default');
      expect(entry.total).toBe(150);
      expect(entry.children).toHaveLength(100);
      expect(entry.children[0]).toMatchObject({ name: 'parked-0', attempt: 1 });
    } finally {
      release();
      await app.close();
    }
  });

  it.each(['express', 'fastify'] as const)(
    'closes while a page is connected to the event stream (%s)',
    async (adapter) => {
      @Module({ imports: [ConcurrencyModule.forRoot({ dashboard: { guard: false } })] })
      class AppModule {}
      const app = await NestFactory.create(
        AppModule,
        adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(),
        { logger: false, abortOnError: false },
      );
      await app.listen(0, '127.0.0.1');
      const { port } = app.getHttpServer().address() as { port: number };
      let ended = false;
      const firstEvent = new Promise<string>((resolve, reject) => {
        get({ host: '127.0.0.1', port, path: '/_concurrency/events' }, (res) => {
          res.setEncoding('utf8');
          let text = '';
          res.on('data', (chunk: string) => {
            text += chunk;
            if (text.includes('\n\n')) resolve(text);
          });
          res.on('end', () => (ended = true));
        }).on('error', reject);
      });
      expect(await firstEvent).toContain('"supervisors"');
      await app.close();
      await vi.waitFor(() => expect(ended).toBe(true), { timeout: 5000 });
    },
  );

  it.each(['express', 'fastify'] as const)(
    'serves the page with its requests under app.setGlobalPrefix() (%s)',
    async (adapter) => {
      @Module({ imports: [ConcurrencyModule.forRoot({ dashboard: { guard: false } })] })
      class AppModule {}
      const app = await NestFactory.create(
        AppModule,
        adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(),
        { logger: false, abortOnError: false },
      );
      app.setGlobalPrefix('api');
      await app.listen(0, '127.0.0.1');
      try {
        const { port } = app.getHttpServer().address() as { port: number };
        const page = await fetch(`http://127.0.0.1:${port}/api/_concurrency?from=menu`);
        expect(page.status).toBe(200);
        // The page requests the snapshot and the event stream under the path it was loaded from (its location).
        const base = '/api/_concurrency';
        expect((await fetch(`http://127.0.0.1:${port}${base}/snapshot`)).status).toBe(200);
        const events = new AbortController();
        const stream = await fetch(`http://127.0.0.1:${port}${base}/events`, { signal: events.signal });
        expect(stream.status).toBe(200);
        expect(stream.headers.get('content-type')).toContain('text/event-stream');
        events.abort();
      } finally {
        await app.close();
      }
    },
  );

  it('shows a fan-out call in flight with done / total and failures', async () => {
    const app = await boot(ConcurrencyModule.forRoot({ dashboard: { guard: false } }));
    let release!: () => void;
    const blocked = new Promise<void>((resolve) => (release = resolve));
    try {
      const call = app.get(FanOut).settle([1, 2, 3, 4], async (n) => {
        if (n === 2) throw new Error('two');
        if (n === 4) await blocked;
        return n;
      });
      await new Promise((resolve) => setTimeout(resolve, 10));
      const res = await request(app.getHttpServer()).get('/_concurrency/snapshot').expect(200);
      expect(res.body.fanOut).toEqual([expect.objectContaining({ settled: 3, total: 4, failed: 1, timedOut: 0 })]);
      release();
      await call;
      const after = await request(app.getHttpServer()).get('/_concurrency/snapshot').expect(200);
      expect(after.body.fanOut).toEqual([]);
    } finally {
      release();
      await app.close();
    }
  });
});
