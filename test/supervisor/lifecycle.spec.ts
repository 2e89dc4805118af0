import { Injectable, Logger, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  ConcurrencyModule,
  type ConcurrencyModuleOptions,
  InjectSupervisor,
  SupervisorShutdownError,
  TaskAbortedError,
  TaskSupervisor,
} from 'nestjs-concurrency';

@Injectable()
class Work {
  constructor(
    @InjectSupervisor() readonly main: TaskSupervisor,
    @InjectSupervisor('quick-exit') readonly quickExit: TaskSupervisor,
  ) {}
}

async function boot(options: ConcurrencyModuleOptions) {
  @Module({ imports: [ConcurrencyModule.forRoot(options)], providers: [Work] })
  class AppModule {}
  const app = await NestFactory.create(AppModule, { abortOnError: false, logger: false });
  await app.init();
  return app;
}

afterEach(() => vi.restoreAllMocks());

describe('Supervisors in the Nest lifecycle', () => {
  it('app.close() waits for a running child', async () => {
    const app = await boot({});
    const { main } = app.get(Work);
    let finished = false;
    main.startChild(async () => {
      await new Promise((resolve) => setTimeout(resolve, 100));
      finished = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    await app.close();
    expect(finished).toBe(true);
    expect(() => main.startChild(() => 1)).toThrow(SupervisorShutdownError);
  });

  it('drains every supervisor, each with its own shutdownTimeout from the options', async () => {
    const app = await boot({ shutdownTimeout: 5000, supervisors: { 'quick-exit': { shutdownTimeout: 20 } } });
    const { main, quickExit } = app.get(Work);
    let mainFinished = false;
    let mainSignal!: AbortSignal;
    let quickReason: unknown;
    // would stop early if aborted: it must finish on its own, with its signal untouched
    main.startChild(async (ctx) => {
      mainSignal = ctx.signal;
      await new Promise((resolve) => {
        setTimeout(resolve, 150);
        ctx.signal.addEventListener('abort', resolve);
      });
      mainFinished = !ctx.signal.aborted;
    });
    quickExit.startChild(
      (ctx) =>
        new Promise((resolve) =>
          ctx.signal.addEventListener('abort', () => {
            quickReason = ctx.signal.reason;
            resolve(undefined);
          }),
        ),
    );
    await new Promise((resolve) => setImmediate(resolve));
    const t0 = Date.now();
    await app.close();
    expect(mainFinished).toBe(true); // 150 ms < 5000 ms: drained, not aborted
    expect(mainSignal.aborted).toBe(false);
    expect(quickReason).toBeInstanceOf(TaskAbortedError); // 20 ms: aborted
    expect(Date.now() - t0).toBeLessThan(4000);
  });

  it('SIGTERM with enableShutdownHooks drains running children before the process exits', async () => {
    vi.spyOn(Logger.prototype, 'error').mockImplementation(() => {});
    const app = await boot({});
    app.enableShutdownHooks(['SIGTERM']);
    const { main } = app.get(Work);
    const order: string[] = [];
    // Nest re-sends the signal to the process after closing the app: record it instead of dying.
    const kill = vi.spyOn(process, 'kill').mockImplementation(() => {
      order.push('process.kill');
      return true;
    });
    main.startChild(async () => {
      await new Promise((resolve) => setTimeout(resolve, 100));
      order.push('child finished');
    });
    await new Promise((resolve) => setImmediate(resolve));
    process.emit('SIGTERM');
    await vi.waitFor(() => expect(kill).toHaveBeenCalled(), { timeout: 5000 });
    expect(order).toEqual(['child finished', 'process.kill']);
  });
});
