import { Injectable, Module } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  ConcurrencyModule,
  ConcurrencyOptionsError,
  FanOut,
  InjectSupervisor,
  Interval,
  type JobContext,
  JobRegistry,
  TaskSupervisor,
} from 'nestjs-concurrency';
import { ConcurrencyTester, ConcurrencyTestingModule } from 'nestjs-concurrency/testing';
import { bootKit } from './helpers.js';

const T0 = new Date('2030-01-01T00:00:00.000Z').getTime();

@Injectable()
class Heartbeat {
  runs = 0;
  @Interval(100, { name: 'heartbeat' })
  beat(): void {
    this.runs++;
  }
}

describe('ConcurrencyTestingModule', () => {
  afterEach(() => vi.useRealTimers());

  it('gives the real module: supervisors, fan-out and the job registry are injectable as in production', async () => {
    const { app, tester } = await bootKit([Heartbeat]);
    expect(app.get(TaskSupervisor)).toBeInstanceOf(TaskSupervisor);
    expect(await app.get(FanOut).map([1, 2, 3], (x) => x * 2)).toEqual([2, 4, 6]);
    expect(app.get(JobRegistry).get('heartbeat').kind).toBe('interval');
    expect(tester).toBeInstanceOf(ConcurrencyTester);
    await app.close();
  });

  it('validates the options exactly as ConcurrencyModule does, naming the option', async () => {
    const boot = (options: unknown) =>
      Test.createTestingModule({ imports: [ConcurrencyTestingModule.forRoot(options as never)] })
        .compile()
        .then((ref) => ref.createNestApplication({ logger: false }).init());
    await expect(boot({ fanOut: { concurrency: 0 } })).rejects.toThrow(/"fanOut\.concurrency"/);
    await expect(boot({ shutdownTimeout: -1 })).rejects.toThrow(/"shutdownTimeout"/);
    await expect(boot({ jobs: 'yes' })).rejects.toThrow(/"jobs"/);
    await expect(boot({ cahce: {} })).rejects.toThrow(ConcurrencyOptionsError);
    await expect(boot('all')).rejects.toThrow(ConcurrencyOptionsError);
  });

  it('refuses a testing option it does not know or of the wrong type, naming it', () => {
    expect(() => ConcurrencyTestingModule.forRoot({}, { armJobs: 'yes' } as never)).toThrow(
      /option "armJobs": expected true or false, got "yes"/,
    );
    expect(() => ConcurrencyTestingModule.forRoot({}, { armjobs: true } as never)).toThrow(
      /Unknown ConcurrencyTestingModule option "armjobs"/,
    );
  });

  it('arms no job timer at boot: a job runs only when the test runs or advances it', async () => {
    vi.useFakeTimers({ now: T0 });
    const { app, tester } = await bootKit([Heartbeat]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(app.get(Heartbeat).runs).toBe(0);
    expect(app.get(JobRegistry).get('heartbeat').nextRunAt).toBeNull();
    await tester.advance(250);
    expect(app.get(Heartbeat).runs).toBe(2);
    vi.useRealTimers();
    await app.close();
  });

  it('arms the job timers at boot when asked (armJobs: true), and then advance() says to use the timers', async () => {
    vi.useFakeTimers({ now: T0 });
    const { app, tester } = await bootKit([Heartbeat], {}, { armJobs: true });
    await vi.advanceTimersByTimeAsync(350);
    expect(app.get(Heartbeat).runs).toBe(3);
    await expect(tester.advance(100)).rejects.toThrow(/armJobs: true/);
    vi.useRealTimers();
    await app.close();
  });

  it('boots a job with lock: true without a lock store (an in-memory lock is the test default)', async () => {
    @Injectable()
    class Locked {
      tokens: (number | undefined)[] = [];
      @Interval(1000, { name: 'locked', lock: true })
      run(ctx: JobContext): void {
        this.tokens.push(ctx.fencingToken);
      }
    }
    const { app, tester } = await bootKit([Locked]);
    await tester.advance(2000);
    expect(app.get(Locked).tokens).toEqual([expect.any(Number), expect.any(Number)]);
    await app.close();
    // The same options fail in production: the default is the kit's.
    const production = Test.createTestingModule({ imports: [ConcurrencyModule.forRoot()], providers: [Locked] });
    await expect(
      production.compile().then((ref) => ref.createNestApplication({ logger: false }).init()),
    ).rejects.toThrow(/no lock store is configured/);
  });

  it('closes within its short shutdownTimeout when a test leaves a task running until it is aborted', async () => {
    const { app } = await bootKit([]);
    const supervisor = app.get(TaskSupervisor);
    let aborted: unknown;
    supervisor.startChild(
      ({ signal }) =>
        new Promise<void>((resolve) =>
          signal.addEventListener('abort', () => {
            aborted = signal.reason;
            resolve();
          }),
        ),
      { name: 'left-running' },
    );
    const started = performance.now();
    await app.close();
    // Production's default shutdownTimeout (5000 ms) would hold close() that long before aborting.
    expect(performance.now() - started).toBeLessThan(4000);
    expect(aborted).toMatchObject({ name: 'TaskAbortedError' });
  });

  it('works with overrideProvider: a job calls the stand-in', async () => {
    @Injectable()
    class Mailer {
      send(to: string): string {
        throw new Error(`real mailer called for ${to}`);
      }
    }
    @Injectable()
    class Digest {
      constructor(private readonly mailer: Mailer) {}
      @Interval(60_000, { name: 'digest' })
      run(): void {
        this.mailer.send('team@example.com');
      }
    }
    const sent: string[] = [];
    const { app, tester } = await bootKit([Mailer, Digest], {}, undefined, (builder) =>
      builder.overrideProvider(Mailer).useValue({ send: (to: string) => sent.push(to) }),
    );
    expect(await tester.runJob('digest')).toEqual({ status: 'fulfilled', value: undefined });
    expect(sent).toEqual(['team@example.com']);
    await app.close();
  });

  it('forApp() without a ConcurrencyModule in the app fails boot saying what to import', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [ConcurrencyTestingModule.forApp()] }).compile();
    await expect(moduleRef.createNestApplication({ logger: false }).init()).rejects.toThrow(
      /found no ConcurrencyModule.*ConcurrencyTestingModule\.forRoot\(\)/,
    );
  });

  it("forApp() adds the kit to an app whose own module imports ConcurrencyModule, with that module's options", async () => {
    @Injectable()
    class Worker {
      done: string[] = [];
      constructor(@InjectSupervisor('mail') private readonly supervisor: TaskSupervisor) {}
      start(name: string): void {
        this.supervisor.startChild(async () => {
          await new Promise((resolve) => setTimeout(resolve, 20));
          this.done.push(name);
        });
      }
    }
    @Module({
      imports: [ConcurrencyModule.forRootAsync({ useFactory: () => ({ supervisors: { mail: { maxChildren: 2 } } }) })],
      providers: [Worker, Heartbeat],
    })
    class AppModule {}
    const moduleRef = await Test.createTestingModule({
      imports: [AppModule, ConcurrencyTestingModule.forApp()],
    }).compile();
    const app = await moduleRef.createNestApplication({ logger: false }).init();
    const tester = app.get(ConcurrencyTester);
    app.get(Worker).start('a');
    await tester.idle();
    expect(app.get(Worker).done).toEqual(['a']);
    // jobs are not armed either: they run when advanced
    expect(app.get(JobRegistry).get('heartbeat').nextRunAt).toBeNull();
    await tester.advance(100);
    expect(app.get(Heartbeat).runs).toBe(1);
    await app.close();
  });
});
