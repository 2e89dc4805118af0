import { type INestApplication, Injectable, Module } from '@nestjs/common';
import {
  ConcurrencyHealthIndicator,
  ConcurrencyModule,
  MaxChildrenError,
  FanOut,
  getSupervisorToken,
  Interval,
  JobRegistry,
  type TaskSupervisor,
} from 'nestjs-concurrency';
import { bootstrapApp } from '../e2e/utils/bootstrap-app.js';

/** What one snapshot weighs, whatever the application runs: lists are capped, long texts are cut. */
const never = ({ signal }: { signal: AbortSignal }) =>
  new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));

@Injectable()
class Jobs {
  @Interval(3_600_000, { name: 'wordy' })
  wordy(): void {
    throw new Error(`upstream said: ${'e'.repeat(100_000)}`);
  }
}

let flakyFails = true;

@Injectable()
class FlakyJobs {
  @Interval(3_600_000, { name: 'flaky' })
  flaky(): void {
    if (flakyFails) throw new Error('upstream down');
  }
}

let releaseSlow: () => void = () => undefined;

@Injectable()
class SlowJobs {
  @Interval(3_600_000, { name: 'slow' })
  slow(): Promise<void> {
    return new Promise((resolve) => (releaseSlow = resolve));
  }
}

@Module({
  imports: [
    ConcurrencyModule.forRoot({
      supervisors: { small: { maxChildren: 2 }, timed: {} },
      dashboard: { guard: false, readOnly: false },
    }),
  ],
  providers: [Jobs, SlowJobs, FlakyJobs],
})
class AppModule {}

describe('the dashboard snapshot', () => {
  let app: INestApplication;
  let base: string;
  const abort = new AbortController();

  beforeAll(async () => {
    app = await bootstrapApp('express', AppModule);
    await app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}/_concurrency`;
  });
  afterAll(async () => {
    abort.abort();
    await app?.close();
  });

  it('lists at most 100 fan-out calls in flight, and says how many there are', async () => {
    const fanOut = app.get(FanOut);
    const calls = Array.from({ length: 5000 }, () =>
      fanOut.map([1], (_, ctx) => never(ctx), { signal: abort.signal }).catch(() => undefined),
    );
    const res = await fetch(`${base}/snapshot`);
    const text = await res.text();
    const snapshot = JSON.parse(text);
    expect(snapshot.fanOut).toHaveLength(100);
    expect(snapshot.fanOutTotal).toBe(5000);
    expect(text.length).toBeLessThan(50_000);
    abort.abort();
    await Promise.all(calls);
  });

  it('cuts a long child name and a long error at a bounded length, with an ellipsis', async () => {
    const supervisor = app.get<TaskSupervisor>(getSupervisorToken('default'));
    const child = supervisor.startChild(never, { name: `report-${'n'.repeat(100_000)}` });
    await app
      .get(JobRegistry)
      .trigger('wordy')
      .catch(() => undefined);
    const text = await (await fetch(`${base}/snapshot`)).text();
    const snapshot = JSON.parse(text);
    const name: string = snapshot.supervisors[0].children[0].name;
    expect(name.length).toBe(200);
    expect(name.startsWith('report-nnn')).toBe(true);
    expect(name.endsWith('…')).toBe(true);
    const error: string = snapshot.jobs[0].lastError;
    expect(error.length).toBe(500);
    expect(error.endsWith('…')).toBe(true);
    expect(text.length).toBeLessThan(5_000);
    await supervisor.terminateChild(child.id);
  });

  it('replaces bidi controls in names so they cannot render reordered', async () => {
    const supervisor = app.get<TaskSupervisor>(getSupervisorToken('default'));
    const child = supervisor.startChild(never, { name: 'report-\u202Etxt.exe\u2066x\u2069' });
    const snapshot = await (await fetch(`${base}/snapshot`)).json();
    const names = snapshot.supervisors[0].children.map((c: { name: string }) => c.name);
    expect(names).toContain('report-\uFFFDtxt.exe\uFFFDx\uFFFD');
    await supervisor.terminateChild(child.id);
  });

  it("shows a job's last error with its time, marked as past once a later run succeeded", async () => {
    const jobs = app.get(JobRegistry);
    const flaky = async () =>
      (await (await fetch(`${base}/snapshot`)).json()).jobs.find((j: { name: string }) => j.name === 'flaky');
    const before = Date.now();
    await jobs.trigger('flaky').catch(() => undefined);
    const failedAt = jobs.get('flaky').lastErrorAt!;
    expect(failedAt.getTime()).toBeGreaterThanOrEqual(before);
    expect(failedAt.getTime()).toBeLessThanOrEqual(Date.now());
    expect(await flaky()).toMatchObject({
      lastError: 'upstream down',
      lastErrorAt: failedAt.getTime(),
      lastErrorPast: false,
    });
    flakyFails = false;
    await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(failedAt.getTime())); // a later millisecond
    await jobs.trigger('flaky');
    expect(await flaky()).toMatchObject({
      lastError: 'upstream down',
      lastErrorAt: failedAt.getTime(),
      lastErrorPast: true,
    });
    flakyFails = true;
    await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(jobs.get('flaky').lastRunAt!.getTime()));
    await jobs.trigger('flaky').catch(() => undefined);
    expect(await flaky()).toMatchObject({ lastError: 'upstream down', lastErrorPast: false });
    expect(jobs.get('flaky').lastErrorAt!.getTime()).toBeGreaterThan(failedAt.getTime());
  });

  it('gives p50/p95/p99 of recent durations per supervisor and per job, from a bounded window', async () => {
    const timed = app.get<TaskSupervisor>(getSupervisorToken('timed'));
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    // 90 children that end at once, 10 that take at least 300 ms: the median is fast, p95 and p99 are slow.
    const tasks = [
      ...Array.from({ length: 90 }, () => timed.async(() => undefined)),
      ...Array.from({ length: 10 }, () => timed.async(() => sleep(300))),
    ];
    await Promise.all(tasks.map((task) => task.await(30_000)));
    await vi.waitFor(async () => {
      const snapshot = await (await fetch(`${base}/snapshot`)).json();
      const row = snapshot.supervisors.find((s: { name: string }) => s.name === 'timed');
      expect(row.durations.count).toBe(100);
      expect(row.durations.p50).toBeLessThan(250);
      expect(row.durations.p95).toBeGreaterThanOrEqual(295);
      expect(row.durations.p99).toBeGreaterThanOrEqual(row.durations.p95);
    });
    // The window is bounded: 300 more fast children push the slow ones out.
    await Promise.all(Array.from({ length: 300 }, () => timed.async(() => undefined).await(30_000)));
    await vi.waitFor(async () => {
      const snapshot = await (await fetch(`${base}/snapshot`)).json();
      const row = snapshot.supervisors.find((s: { name: string }) => s.name === 'timed');
      expect(row.durations.count).toBe(256);
      expect(row.durations.p99).toBeLessThan(250);
    });
    const jobs = app.get(JobRegistry);
    await jobs.trigger('flaky').catch(() => undefined);
    const runsBefore = jobs.get('flaky').runs;
    const job = (await (await fetch(`${base}/snapshot`)).json()).jobs.find((j: { name: string }) => j.name === 'flaky');
    expect(job.durations.count).toBe(runsBefore);
    expect(job.durations.p50).toBeGreaterThanOrEqual(0);
  });

  const action = (path: string) =>
    fetch(`${base}${path}`, { method: 'POST', headers: { 'x-concurrency-dashboard': '1' } });

  it('answers 404 to Terminate for a child that is not running, naming it', async () => {
    const res = await action('/supervisors/default/children/no-such-child/terminate');
    expect(res.status).toBe(404);
    expect((await res.json()).message).toContain('no-such-child');
  });

  it('answers 409 to Run while the job is running (the run is skipped), 202 once it is not', async () => {
    const jobs = app.get(JobRegistry);
    const first = jobs.trigger('slow');
    const res = await action('/jobs/slow/run');
    expect(res.status).toBe(409);
    expect((await res.json()).message).toContain('slow');
    expect(jobs.get('slow').runs).toBe(1);
    releaseSlow();
    await first;
    const again = await action('/jobs/slow/run');
    expect(again.status).toBe(202);
    await vi.waitFor(() => expect(jobs.get('slow').runs).toBe(2));
    releaseSlow();
  });

  it('shows saturation: a supervisor at maxChildren with its refused starts, in the snapshot and in health', async () => {
    const small = app.get<TaskSupervisor>(getSupervisorToken('small'));
    const refs = [small.startChild(never), small.startChild(never)];
    for (let i = 0; i < 5; i++) expect(() => small.startChild(never)).toThrow(MaxChildrenError);
    try {
      const snapshot = await (await fetch(`${base}/snapshot`)).json();
      const row = snapshot.supervisors.find((s: { name: string }) => s.name === 'small');
      expect(row).toMatchObject({ total: 2, capacity: 2, counts: { refused: 5 } });
      const health = await app.get(ConcurrencyHealthIndicator).check();
      expect(health.concurrency.status).toBe('down');
      expect(health.concurrency['supervisor:small']).toMatchObject({ status: 'down' });
      expect((health.concurrency['supervisor:small'] as { message: string }).message).toContain('5');
    } finally {
      for (const ref of refs) await small.terminateChild(ref.id);
    }
    const health = await app.get(ConcurrencyHealthIndicator).check();
    expect(health.concurrency['supervisor:small']).toBeUndefined();
  });
});
