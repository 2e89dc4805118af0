import { AppProcess, compileFixture, root } from '../utils/app-process.js';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';

// The cluster versions of the overlap guarantees: app instances in their own processes (one event loop each), one
// real redis-server, RedisJobLock. Real timers: the bounds below follow from the policies, not from timings.

const out = `${root}node_modules/.cache/nestjs-concurrency-overlap-process`;
const script = `${out}/test/scheduling/fixtures/overlap-instance.process.js`;

const HOUR = 3_600_000;

/** One run of the job, as its instance printed it (epoch ms). */
interface Run {
  instance: string;
  scheduledAt: number;
  start: number;
  end?: number;
  abort?: { at: number; taskAborted: boolean; reason: string };
}

/** What `JobRegistry.get('slow')` says on an instance. */
interface Info {
  runs: number;
  skipped: number;
  running: number;
  lockFailures: number;
}

interface InstanceEnv {
  POLICY: 'buffer-one' | 'cancel-previous';
  PERIOD: number;
  RUN_MS: number;
  INITIAL_DELAY?: number;
  /** How long a run takes to end once its signal aborts (default 50 ms). */
  CLEANUP_MS?: number;
}

/** An app instance in its own process (test/scheduling/fixtures/overlap-instance.process.ts, compiled). */
class Instance extends AppProcess {
  readonly runs: Run[] = [];
  /** When this instance last printed something about a run. */
  lastEventAt = Date.now();
  /** When the test heard that this instance had booted (its timer started a moment before). */
  readyAt = Number.NaN;
  readonly #waiting: Array<(line: string) => void> = [];

  constructor(name: string, url: string, env: InstanceEnv) {
    const vars: Record<string, string> = { REDIS_URL: url, INSTANCE: name };
    for (const [key, value] of Object.entries(env)) if (value !== undefined) vars[key] = String(value);
    super(name, script, vars);
    void this.ready.then(() => (this.readyAt = Date.now()));
  }

  protected override onLine(line: string): void {
    this.#line(line);
  }

  #line(line: string): void {
    const [kind, ...rest] = line.split(' ');
    if (kind === 'stopped' || kind === 'info') {
      this.#waiting.shift()?.(rest.join(' '));
      return;
    }
    if (kind !== 'start' && kind !== 'abort' && kind !== 'end') return;
    const scheduledAt = Number(rest[0]);
    const at = Number(rest[1]);
    this.lastEventAt = Date.now();
    if (kind === 'start') {
      this.runs.push({ instance: this.name, scheduledAt, start: at });
      return;
    }
    const run = this.runs.findLast((r) => r.scheduledAt === scheduledAt);
    if (!run) throw new Error(`${this.name}: "${line}" for a run that never started`);
    if (kind === 'end') run.end = at;
    else run.abort = { at, taskAborted: rest[2] === '1', reason: rest[3] };
  }

  #ask(command: string): Promise<string> {
    return new Promise((resolve) => {
      this.#waiting.push(resolve);
      this.send(command);
    });
  }

  /** Stops this instance's timer (runs and ticks already going carry on); resolves when it was stopped. */
  async stop(): Promise<number> {
    return Number(await this.#ask('stop'));
  }

  /** The runs going on this instance end now (not aborted). */
  finish(): void {
    this.send('finish');
  }

  async info(): Promise<Info> {
    return JSON.parse(await this.#ask('info')) as Info;
  }
}

/** The most runs going at one moment. A run with no end yet goes on; an end and a start in the same ms do not meet. */
function maxConcurrent(runs: Run[]): number {
  const edges: Array<[number, number]> = [];
  for (const run of runs) {
    edges.push([run.start, 1]);
    if (run.end !== undefined) edges.push([run.end, -1]);
  }
  edges.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let now = 0;
  let max = 0;
  for (const [, delta] of edges) max = Math.max(max, (now += delta));
  return max;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Waits until every run has ended and no instance has printed anything for `quietMs`: far longer than the 100 ms a
 * waiting tick takes to see the running lease free, so a tick still held somewhere would have started by then.
 */
async function settled(instances: Instance[], quietMs = 1500, timeout = 30_000): Promise<void> {
  await vi.waitFor(
    () => {
      for (const instance of instances) {
        expect(instance.runs.filter((r) => r.end === undefined)).toEqual([]);
        expect(Date.now() - instance.lastEventAt).toBeGreaterThanOrEqual(quietMs);
      }
    },
    { timeout, interval: 100 },
  );
}

describe.skipIf(!redisAvailable)('overlap policies across instances (processes, real redis-server)', () => {
  let server: RedisServer;
  const instances: Instance[] = [];

  beforeAll(() => {
    compileFixture(`${root}test/scheduling/fixtures/tsconfig.overlap-process.json`, out);
  }, 240_000);
  // A Redis of its own per test: a killed instance's running lease would otherwise stay until its TTL.
  beforeEach(async () => {
    server = await RedisServer.start();
  });
  afterEach(async () => {
    await Promise.all(instances.splice(0).map((i) => i.kill()));
    await server?.stop();
  });

  const boot = async (name: string, env: InstanceEnv): Promise<Instance> => {
    const instance = new Instance(name, server.url, env);
    instances.push(instance);
    await instance.ready;
    return instance;
  };

  it("'buffer-one': two instances ticking together never run two at once, and every tick runs or is skipped", async () => {
    // Different periods: with one period, the instance whose timer fires first in each slot wins every tick, and the
    // other never contends for the running lease. These two both take ticks and meet at every run.
    const periods = { a: 100, b: 130 };
    const [a, b] = await Promise.all([
      boot('a', { POLICY: 'buffer-one', PERIOD: periods.a, RUN_MS: 400 }),
      boot('b', { POLICY: 'buffer-one', PERIOD: periods.b, RUN_MS: 400 }),
    ]);
    await sleep(6000); // the window observed
    const stops = { a: await a.stop(), b: await b.stop() };
    const stoppedAt = Math.max(stops.a, stops.b);
    await settled([a, b]);

    const runs = [...a.runs, ...b.runs].sort((x, y) => x.start - y.start);
    expect(maxConcurrent(runs)).toBe(1);
    expect(a.runs.length).toBeGreaterThan(0);
    expect(b.runs.length).toBeGreaterThan(0);
    // About 100 ticks in the window and runs of 400 ms: the ticks kept during a run are what ran next. A run that
    // started from a kept tick was scheduled before the run before it ended (with 'skip', none would be); at least
    // half of them, generously (a newer tick may still win the lease in the moment a kept one gives up).
    const kept = runs.slice(1).filter((run, i) => run.scheduledAt < runs[i].end!);
    expect(runs.length).toBeGreaterThanOrEqual(4);
    expect(kept.length).toBeGreaterThanOrEqual((runs.length - 1) / 2);
    // Once the timers stopped, what may still start is the one kept tick and the ticks that were already on their
    // way to the lock (one per instance): a second kept tick would show as more.
    expect(runs.filter((r) => r.start > stoppedAt).length).toBeLessThanOrEqual(3);
    // Every tick either ran or was counted in skipped: none is left waiting. Each instance ticked once per period
    // from its boot to its stop (a period of slack at each end, and 500 ms between its timer's start and the test
    // hearing that it was ready).
    for (const instance of [a, b]) {
      const info = await instance.info();
      const name = instance.name as 'a' | 'b';
      const up = stops[name] - instance.readyAt;
      expect(info.running).toBe(0);
      expect(info.runs).toBe(instance.runs.length);
      expect(info.runs + info.skipped).toBeGreaterThanOrEqual(Math.floor(up / periods[name]) - 2);
      expect(info.runs + info.skipped).toBeLessThanOrEqual(Math.ceil((up + 500) / periods[name]) + 2);
    }
  }, 90_000);

  it("'buffer-one': the ticks of one instance during another instance's run keep exactly one, run after it", async () => {
    // a ticks once (at boot) and its run goes until told to finish; b ticks every 100 ms meanwhile.
    const a = await boot('a', { POLICY: 'buffer-one', PERIOD: HOUR, INITIAL_DELAY: 0, RUN_MS: 600_000 });
    await vi.waitFor(() => expect(a.runs).toHaveLength(1), { timeout: 10_000 });
    const b = await boot('b', { POLICY: 'buffer-one', PERIOD: 100, RUN_MS: 300 });
    await vi.waitFor(async () => expect((await b.info()).skipped).toBeGreaterThanOrEqual(5), {
      timeout: 20_000,
      interval: 200,
    });
    const stoppedAt = await b.stop();
    // Nothing ran on b while a's run went on.
    expect(b.runs).toEqual([]);
    a.finish();
    await settled([a, b]);

    expect(a.runs).toHaveLength(1);
    // Exactly one of b's ticks was kept: it ran once a's run had ended, and no other after it.
    expect(b.runs).toHaveLength(1);
    expect(b.runs[0].start).toBeGreaterThanOrEqual(a.runs[0].end!);
    expect(b.runs[0].scheduledAt).toBeLessThan(stoppedAt);
    expect(maxConcurrent([...a.runs, ...b.runs])).toBe(1);
    const info = await b.info();
    expect(info).toMatchObject({ runs: 1, running: 0 });
    expect(info.skipped).toBeGreaterThanOrEqual(5);
  }, 90_000);

  it("'cancel-previous': two instances ticking together never run two at once; each run is cancelled with TaskAbortedError", async () => {
    // A run lasts 3 s unless cancelled, about 10 periods: every run but the last one sees a newer tick. Different
    // periods, so that both instances take ticks (see above).
    const [a, b] = await Promise.all([
      boot('a', { POLICY: 'cancel-previous', PERIOD: 300, RUN_MS: 3000 }),
      boot('b', { POLICY: 'cancel-previous', PERIOD: 370, RUN_MS: 3000 }),
    ]);
    await sleep(5000); // the window observed
    await Promise.all([a.stop(), b.stop()]);
    await settled([a, b]);

    const runs = [...a.runs, ...b.runs].sort((x, y) => x.start - y.start);
    expect(maxConcurrent(runs)).toBe(1);
    expect(a.runs.length).toBeGreaterThan(0);
    expect(b.runs.length).toBeGreaterThan(0);
    // 5 s of ticks every 300 ms: runs are cancelled again and again.
    expect(runs.length).toBeGreaterThanOrEqual(5);
    // Every run a newer one followed was cancelled, with a TaskAbortedError as its signal's reason.
    for (const run of runs.slice(0, -1)) {
      expect(run.abort, `run ${run.instance}@${run.scheduledAt}`).toMatchObject({
        taskAborted: true,
        reason: 'TaskAbortedError',
      });
    }
  }, 90_000);

  it("'cancel-previous': a tick on one instance cancels the run on the other with TaskAbortedError, then runs", async () => {
    // a ticks once (at boot): its run goes on until cancelled. Only b's ticks can cancel it.
    const a = await boot('a', { POLICY: 'cancel-previous', PERIOD: HOUR, INITIAL_DELAY: 0, RUN_MS: 600_000 });
    await vi.waitFor(() => expect(a.runs).toHaveLength(1), { timeout: 10_000 });
    const b = await boot('b', { POLICY: 'cancel-previous', PERIOD: 300, RUN_MS: 3000 });
    await vi.waitFor(() => expect(b.runs.length).toBeGreaterThanOrEqual(3), { timeout: 20_000 });
    await b.stop();
    a.finish(); // ends it only if it was not cancelled: then the assertions below say so
    await settled([a, b]);

    // a's only run: cancelled from b, with a TaskAbortedError as its signal's reason.
    expect(a.runs).toHaveLength(1);
    expect(await a.info()).toMatchObject({ runs: 1, skipped: 0, running: 0 });
    const [cancelled] = a.runs;
    expect(cancelled.abort).toMatchObject({ taskAborted: true, reason: 'TaskAbortedError' });
    // b's first run started only once a's had ended; then b's own ticks cancelled b's runs the same way.
    expect(b.runs[0].start).toBeGreaterThanOrEqual(cancelled.end!);
    for (const run of b.runs.slice(0, -1)) {
      expect(run.abort, `run b@${run.scheduledAt}`).toMatchObject({ taskAborted: true, reason: 'TaskAbortedError' });
    }
    expect(maxConcurrent([...a.runs, ...b.runs])).toBe(1);
  }, 90_000);

  it.each(['buffer-one', 'cancel-previous'] as const)(
    "'%s': the tick kept for the end of a run runs next, before newer ticks, even from a stalled instance",
    async (policy) => {
      // a ticks once (at boot); its run ends only when told (cancelled or not).
      const a = await boot('a', {
        POLICY: policy,
        PERIOD: HOUR,
        INITIAL_DELAY: 0,
        RUN_MS: 600_000,
        CLEANUP_MS: 600_000,
      });
      await vi.waitFor(() => expect(a.runs).toHaveLength(1), { timeout: 10_000 });
      // b's first tick during a's run is the kept one ('buffer-one') or the cancelling one ('cancel-previous'); its
      // later ticks are skipped. Then b's timer stops and b stalls (SIGSTOP) while its tick waits.
      const b = await boot('b', { POLICY: policy, PERIOD: 100, RUN_MS: 300 });
      await vi.waitFor(async () => expect((await b.info()).skipped).toBeGreaterThanOrEqual(2), {
        timeout: 20_000,
        interval: 200,
      });
      if (policy === 'cancel-previous') {
        await vi.waitFor(() => expect(a.runs[0].abort).toMatchObject({ taskAborted: true }), { timeout: 10_000 });
      }
      await b.stop();
      b.child.kill('SIGSTOP');
      // c ticks every 100 ms: while a's run goes, its ticks are skipped (a tick is kept already).
      const c = await boot('c', { POLICY: policy, PERIOD: 100, RUN_MS: 300 });
      await vi.waitFor(async () => expect((await c.info()).skipped).toBeGreaterThanOrEqual(2), {
        timeout: 20_000,
        interval: 200,
      });
      a.finish();
      await vi.waitFor(() => expect(a.runs[0].end).toBeDefined(), { timeout: 10_000 });
      // The run has ended; c ticks on with the running lease free, and b's kept tick is still to run.
      const skippedAtEnd = (await c.info()).skipped;
      await vi.waitFor(async () => expect((await c.info()).skipped).toBeGreaterThanOrEqual(skippedAtEnd + 5), {
        timeout: 20_000,
        interval: 200,
      });
      b.child.kill('SIGCONT');
      await vi.waitFor(() => expect(b.runs).toHaveLength(1), { timeout: 10_000 });
      await c.stop();
      await settled([a, b, c]);

      // The kept tick (b's, scheduled during a's run) ran next; c's newer ticks did not run before it.
      expect(b.runs[0].scheduledAt).toBeLessThan(a.runs[0].end!);
      expect(c.runs.filter((r) => r.start < b.runs[0].start)).toEqual([]);
      expect(maxConcurrent([...a.runs, ...b.runs, ...c.runs])).toBe(1);
    },
    90_000,
  );

  it("'buffer-one': the kept tick survives its instance stalling while a lock call is on its way", async () => {
    // a ticks once (at boot); its run ends only when told.
    const a = await boot('a', { POLICY: 'buffer-one', PERIOD: HOUR, INITIAL_DELAY: 0, RUN_MS: 600_000 });
    await vi.waitFor(() => expect(a.runs).toHaveLength(1), { timeout: 10_000 });
    // b's first tick is kept: it polls for the running lease every 100 ms. Its later ticks are skipped.
    const b = await boot('b', { POLICY: 'buffer-one', PERIOD: 100, RUN_MS: 300 });
    await vi.waitFor(async () => expect((await b.info()).skipped).toBeGreaterThanOrEqual(2), {
      timeout: 20_000,
      interval: 200,
    });
    await b.stop();
    // One of b's polls is on its way when b stalls: Redis is frozen, b polls, b stops, Redis answers ("taken").
    server.freeze();
    await sleep(400);
    b.child.kill('SIGSTOP');
    server.thaw();
    await sleep(1500); // past lock.timeout (1 s): when b goes on, its timer fires before it reads the answer
    a.finish();
    await vi.waitFor(() => expect(a.runs[0].end).toBeDefined(), { timeout: 10_000 });
    b.child.kill('SIGCONT');
    // Before, the answer waiting in b's socket counted as a timed-out lock call: the kept tick was dropped as a lock
    // failure, and nothing ran after a's run.
    await vi.waitFor(() => expect(b.runs).toHaveLength(1), { timeout: 10_000 });
    expect(b.runs[0].scheduledAt).toBeLessThan(a.runs[0].end!);
    expect((await b.info()).lockFailures).toBe(0);
  }, 90_000);
});
