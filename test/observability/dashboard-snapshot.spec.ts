import { type INestApplication, Injectable, Module } from '@nestjs/common';
import {
  ConcurrencyModule,
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

@Module({ imports: [ConcurrencyModule.forRoot({ dashboard: { guard: false } })], providers: [Jobs] })
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
});
