import { Inject, Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { ConcurrencyModule, getSupervisorToken, InjectSupervisor, TaskSupervisor } from 'nestjs-concurrency';

@Injectable()
class Mailer {
  constructor(
    @InjectSupervisor() readonly byDefault: TaskSupervisor,
    @InjectSupervisor('emails') readonly emails: TaskSupervisor,
    @Inject(getSupervisorToken('jobs')) readonly jobs: TaskSupervisor,
    readonly byType: TaskSupervisor,
  ) {}
}

// Decorated at import time, before any forRootAsync() below is evaluated, as in an application.
@Injectable()
class ReportsService {
  constructor(@InjectSupervisor('reports-only-injected') readonly reports: TaskSupervisor) {}
}

describe('Supervisor injection', () => {
  it('injects named supervisors with @InjectSupervisor(name), getSupervisorToken(name) and by type', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [ConcurrencyModule.forRoot({ supervisors: { emails: { maxChildren: 2 } } })],
      providers: [Mailer],
    }).compile();
    const mailer = moduleRef.get(Mailer);
    expect(mailer.byDefault).toBeInstanceOf(TaskSupervisor);
    expect(mailer.byDefault.name).toBe('default');
    expect(mailer.emails.name).toBe('emails');
    expect(mailer.jobs.name).toBe('jobs');
    expect(mailer.byType).toBe(mailer.byDefault);
    expect(moduleRef.get(getSupervisorToken('emails'))).toBe(mailer.emails);
    await moduleRef.close();
  });

  it('makes every configured supervisor injectable, even one nobody decorates', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [ConcurrencyModule.forRoot({ supervisors: { 'static-only': { maxRestarts: 1 } } })],
    }).compile();
    expect(moduleRef.get<TaskSupervisor>(getSupervisorToken('static-only')).name).toBe('static-only');
    await moduleRef.close();
  });

  it('with forRootAsync, provides the names used by @InjectSupervisor and applies their async options', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        ConcurrencyModule.forRootAsync({
          useFactory: async () => ({ supervisors: { 'reports-only-injected': { maxChildren: 1 } } }),
        }),
      ],
      providers: [ReportsService],
    }).compile();
    const { reports } = moduleRef.get(ReportsService);
    expect(reports.name).toBe('reports-only-injected');
    reports.startChild(() => new Promise(() => {}));
    expect(() => reports.startChild(() => undefined)).toThrow(/maxChildren/);
    await reports.terminateChild(reports.children()[0].id);
    await moduleRef.close();
  });

  it('creates an injected supervisor missing from the options with the defaults', async () => {
    @Injectable()
    class Unconfigured {
      constructor(@InjectSupervisor('not-configured') readonly sup: TaskSupervisor) {}
    }
    @Module({ imports: [ConcurrencyModule.forRoot()], providers: [Unconfigured] })
    class AppModule {}
    const app = await NestFactory.create(AppModule, { abortOnError: false, logger: false });
    await app.init();
    const { sup } = app.get(Unconfigured);
    expect(sup.name).toBe('not-configured');
    for (let i = 0; i < 50; i++) sup.startChild(() => undefined); // unlimited maxChildren by default
    await app.close();
  });

  it('startNow invokes the function synchronously, tracks it and settles its task', async () => {
    const sup = new TaskSupervisor('now');
    let called = false;
    const task = sup.startNow(async (ctx) => {
      called = true;
      expect(ctx.attempt).toBe(1);
      await new Promise((r) => setTimeout(r, 5));
      return 42;
    });
    expect(called).toBe(true);
    expect(sup.children()).toHaveLength(1);
    expect(await task.await()).toBe(42);
    expect(sup.children()).toHaveLength(0);
  });
});
