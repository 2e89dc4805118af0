import { Controller, HttpCode, Injectable, Post } from '@nestjs/common';
import { FanOut, InjectSupervisor, TaskSupervisor } from 'nestjs-concurrency';
import request from 'supertest';
import { bootKit, deferred } from './helpers.js';

/** Real work that takes a few turns of the event loop (I/O-like), not a timer the test could have tuned. */
const io = () => new Promise((resolve) => setImmediate(resolve));

@Injectable()
class Reports {
  readonly done: string[] = [];
  constructor(
    @InjectSupervisor() private readonly supervisor: TaskSupervisor,
    private readonly fanOut: FanOut,
  ) {}

  /** Fire and forget: the answer leaves before the work has run. */
  generate(name: string): void {
    this.supervisor.startChild(
      async () => {
        for (let i = 0; i < 5; i++) await io();
        // work that starts more work: idle() waits for that too
        this.supervisor.startChild(async () => {
          const parts = await this.fanOut.map([1, 2, 3], async (x) => {
            await io();
            return x * 10;
          });
          this.done.push(`${name}:${parts.join('+')}`);
        });
      },
      { name: `report ${name}` },
    );
  }
}

@Controller('reports')
class ReportsController {
  constructor(private readonly reports: Reports) {}
  @Post()
  @HttpCode(202)
  create(): { accepted: true } {
    this.reports.generate('q1');
    return { accepted: true };
  }
}

describe('ConcurrencyTester.idle()', () => {
  it('resolves once a fire-and-forget controller has finished its work, and the work it started', async () => {
    const { app, tester } = await bootKit([Reports], {}, undefined, undefined, [ReportsController]);
    await request(app.getHttpServer()).post('/reports').expect(202);
    expect(app.get(Reports).done).toEqual([]); // answered before the work ran
    await tester.idle();
    expect(app.get(Reports).done).toEqual(['q1:10+20+30']);
    await app.close();
  });

  it('resolves at once when nothing runs', async () => {
    const { app, tester } = await bootKit([]);
    await expect(tester.idle()).resolves.toBeUndefined();
    await app.close();
  });

  it('waits for a restart of a transient child after its failure', async () => {
    const { app, tester } = await bootKit([]);
    const attempts: number[] = [];
    app.get(TaskSupervisor).startChild(
      async ({ attempt }) => {
        await io();
        attempts.push(attempt);
        if (attempt < 3) throw new Error(`attempt ${attempt} fails`);
      },
      { restart: 'transient' },
    );
    await tester.idle();
    expect(attempts).toEqual([1, 2, 3]);
    await app.close();
  });

  it('waits for a fan-out call that runs outside any supervisor', async () => {
    const { app, tester } = await bootKit([]);
    const gate = deferred();
    let result: number[] | undefined;
    void app
      .get(FanOut)
      .map([1, 2], async (x) => {
        await gate.promise;
        return x;
      })
      .then((values) => (result = values));
    const idle = tester.idle();
    gate.resolve();
    await idle;
    expect(result).toEqual([1, 2]);
    await app.close();
  });

  it('rejects after its timeout naming the tasks and fan-out calls that still run', async () => {
    const { app, tester } = await bootKit([], { supervisors: { mail: {} } });
    const never = new Promise<void>(() => {});
    app.get(TaskSupervisor).startChild(() => never, { name: 'stuck export' });
    const mail = app.get<TaskSupervisor>('TaskSupervisor:mail');
    mail.startChild(() => never);
    const call = app.get(FanOut).settle([1], () => never);
    call.catch(() => {}); // cancelled by app.close()
    const error = await tester.idle(50).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toContain('still running after 50 ms');
    expect(error?.message).toContain('task "stuck export" (default-1) of supervisor "default"');
    expect(error?.message).toMatch(/task mail-1 of supervisor "mail"/);
    expect(error?.message).toContain('fan-out call settle-1');
    await app.close();
  });

  it('rejects a timeout that is not a number of ms, naming the argument', async () => {
    const { app, tester } = await bootKit([]);
    await expect(tester.idle(-1)).rejects.toThrow(RangeError);
    await expect(tester.idle('1s' as never)).rejects.toThrow(/ConcurrencyTester\.idle\(\): invalid timeout/);
    await app.close();
  });

  it("keeps its own deadline under the test runner's fake timers", async () => {
    const { app, tester } = await bootKit([]);
    vi.useFakeTimers();
    try {
      app
        .get(TaskSupervisor)
        .startChild(() => new Promise((resolve) => setTimeout(resolve, 60_000)), { name: 'faked' });
      // the child waits on a faked timer: idle() cannot end it, and says so on the real clock
      await expect(tester.idle(50)).rejects.toThrow(/"faked"/);
      vi.advanceTimersByTime(60_000);
      await expect(tester.idle()).resolves.toBeUndefined();
    } finally {
      vi.useRealTimers();
    }
    await app.close();
  });
});
