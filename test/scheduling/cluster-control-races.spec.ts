// Cluster-wide pause(), resume() and reschedule() under races and faults, one app instance per process on a real
// redis-server: calls from two instances a few ms apart, a pause stored late after an outage, a caller whose event
// loop stalls, and a Redis that lost its data. Every instance must end on the state Redis holds, and that state must be
// the last call's.
import { Redis } from 'ioredis';
import { AppProcess, compileFixture, root } from '../utils/app-process.js';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';

const out = `${root}node_modules/.cache/nestjs-concurrency-control-race`;
const script = `${out}/test/scheduling/fixtures/control-race-instance.process.js`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

class Instance extends AppProcess {
  readonly runs: number[] = [];
  readonly lines: string[] = [];
  readonly #info: ((info: { paused: boolean; schedule: number }) => void)[] = [];

  constructor(name: string, url: string, env: Record<string, string> = {}) {
    super(name, script, { REDIS_URL: url, INSTANCE: name, ...env });
  }

  protected override onLine(line: string): void {
    this.lines.push(line);
    if (line.startsWith('run ')) this.runs.push(Number(line.slice(4)));
    if (line.startsWith('info ')) this.#info.shift()?.(JSON.parse(line.slice(5)));
  }

  info(): Promise<{ paused: boolean; schedule: number }> {
    return new Promise((resolve) => {
      this.#info.push(resolve);
      this.send('info');
    });
  }

  async paused(): Promise<boolean> {
    return (await this.info()).paused;
  }

  runsSince(t: number): number {
    return this.runs.filter((at) => at > t).length;
  }
}

/** What Redis holds for the job `poll`: its pause flag ('1' / '0') and its stored schedule's value. */
async function stored(server: RedisServer): Promise<{ paused: string | null; schedule: number | null }> {
  const redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
  try {
    const prefix = '{nestjs-concurrency:jobs}:control:';
    const schedule = await redis.hget(`${prefix}schedule`, 'poll');
    return {
      paused: await redis.hget(`${prefix}paused`, 'poll'),
      schedule: schedule === null ? null : (JSON.parse(schedule) as { value: number }).value,
    };
  } finally {
    redis.disconnect();
  }
}

describe.skipIf(!redisAvailable)('cluster-wide job control under races and faults (processes, real Redis)', () => {
  let server: RedisServer;
  let instances: Instance[] = [];
  const start = async (...names: string[]) => startWith({}, ...names);
  const startWith = async (env: Record<string, string>, ...names: string[]) => {
    const started = names.map((name) => new Instance(name, server.url, env));
    instances.push(...started);
    await Promise.all(started.map((instance) => instance.ready));
    return started;
  };

  beforeAll(async () => {
    compileFixture(`${root}test/scheduling/fixtures/tsconfig.control-race.json`, out);
    server = await RedisServer.start();
  }, 240_000);
  afterEach(async () => {
    for (const instance of instances) instance.signal('SIGCONT');
    await Promise.all(instances.map((instance) => instance.kill()));
    instances = [];
    const redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
    await redis.flushall().catch(() => undefined);
    redis.disconnect();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('converges on the stored state when A pauses and B resumes 20 ms later, after both saw a resume', async () => {
    const [a, b, c] = await start('a', 'b', 'c');
    const rounds: unknown[] = [];
    for (let round = 0; round < 3; round++) {
      // Every instance sees a stored pause, then a stored resume: what each last read is "not paused".
      a.send('pause');
      await sleep(1500);
      a.send('resume');
      await sleep(1500);
      a.send('pause');
      await sleep(20);
      b.send('resume');
      await sleep(2500);
      const redis = (await stored(server)).paused === '1';
      rounds.push({ a: await a.paused(), b: await b.paused(), c: await c.paused(), redis });
      // Before the fix A stayed paused for good: the stored resume equalled what it had read before its own pause.
      expect(rounds.at(-1)).toEqual({ a: redis, b: redis, c: redis, redis });
    }
  }, 120_000);

  it('converges on the stored schedule when A reschedules to 300 and B to 100 right after', async () => {
    const [a, b, c] = await start('a', 'b', 'c');
    for (let round = 0; round < 3; round++) {
      a.send('reschedule 300');
      await sleep(1500);
      b.send('reschedule 100');
      await sleep(1500);
      a.send('reschedule 300');
      await sleep(20);
      b.send('reschedule 100');
      await sleep(2500);
      const redis = (await stored(server)).schedule;
      const schedules = { a: (await a.info()).schedule, b: (await b.info()).schedule, c: (await c.info()).schedule };
      expect({ round, ...schedules }).toEqual({ round, a: redis, b: redis, c: redis });
    }
  }, 120_000);

  it.each([
    ['commands refused while Redis is away', '0'],
    ["ioredis' offline queue (sent once Redis is back)", '1'],
  ])(
    'keeps the later resume() when an older pause() made during an outage is written late (%s)',
    async (_, queue) => {
      const [a, b] = await startWith({ OFFLINE_QUEUE: queue }, 'a', 'b');
      await sleep(500);
      await server.stop();
      a.send('pause'); // applies on A at once; its write waits for Redis
      await vi.waitFor(async () => expect(await a.paused()).toBe(true), { timeout: 5000 });
      a.signal('SIGSTOP'); // A is slow to get back to Redis (a long GC, a partition)
      await server.restart();
      await sleep(2500);
      b.send('resume'); // the user's last word, seconds after A's pause
      await vi.waitFor(async () => expect((await stored(server)).paused).toBe('0'), { timeout: 10_000 });
      a.signal('SIGCONT'); // A's late write of its older pause reaches Redis now
      await sleep(4000);
      const since = Date.now() - 1500;
      expect({
        redis: (await stored(server)).paused,
        a: await a.paused(),
        b: await b.paused(),
        aRuns: a.runsSince(since) > 0,
        bRuns: b.runsSince(since) > 0,
      }).toEqual({ redis: '0', a: false, b: false, aRuns: true, bRuns: true });
      // A says why its pause() did not hold.
      expect(a.lines.filter((line) => line.includes('another instance stored a later pause()/resume()'))).toHaveLength(
        1,
      );
    },
    60_000,
  );

  it('resolves a reschedule() that Redis stored in time although the caller stalled past its timeout', async () => {
    const [a, b] = await start('a', 'b');
    await sleep(500);
    // The write goes out and Redis runs it at once; then A's event loop is busy for 1.5 s, past the 1 s timeout.
    a.send('reschedule-stall 500 1500');
    await vi.waitFor(() => expect(a.lines.some((line) => line.startsWith('resched '))).toBe(true), {
      timeout: 10_000,
    });
    await sleep(1500);
    const outcome = a.lines.find((line) => line.startsWith('resched '));
    // Before the fix it rejected ("changing nothing") while every instance ran at 500.
    expect({
      outcome,
      redis: (await stored(server)).schedule,
      a: (await a.info()).schedule,
      b: (await b.info()).schedule,
    }).toEqual({ outcome: 'resched ok', redis: 500, a: 500, b: 500 });
  }, 60_000);

  it('applies changes stored after Redis lost its data to an instance that knew the old version', async () => {
    const [a, b] = await start('a', 'b');
    a.send('pause');
    await sleep(1000);
    a.send('resume');
    await sleep(1500); // both know the version of two changes
    a.signal('SIGSTOP'); // A is descheduled while Redis restarts empty (no persistence, a failover, FLUSHALL)
    await server.stop();
    await server.restart();
    await sleep(2500);
    b.send('pause');
    await sleep(300);
    b.send('reschedule 300'); // before the fix: version 2 again, which A took for "nothing changed"
    await vi.waitFor(() => expect(b.lines).toContain('resched ok'), { timeout: 10_000 });
    a.signal('SIGCONT');
    await sleep(2500);
    const since = Date.now() - 1000;
    expect({ a: await a.paused(), schedule: (await a.info()).schedule, runs: a.runsSince(since) }).toEqual({
      a: true,
      schedule: 300,
      runs: 0,
    });
  }, 60_000);

  it('applies a schedule another instance stores after its own reschedule() to it failed', async () => {
    const [a, b] = await start('a', 'b');
    await sleep(500);
    await server.stop();
    a.send('reschedule 300'); // rejects: Redis is down; A keeps 100
    await vi.waitFor(() => expect(a.lines.some((line) => line.startsWith('resched err'))).toBe(true), {
      timeout: 10_000,
    });
    await server.restart();
    await sleep(2000);
    b.send('reschedule 300'); // the user retries, and the request lands on B
    await vi.waitFor(() => expect(b.lines).toContain('resched ok'), { timeout: 10_000 });
    await vi.waitFor(async () => expect((await a.info()).schedule).toBe(300), { timeout: 5000 });
  }, 60_000);

  it('takes the stored later resume() when its own late pause() is refused while it still boots', async () => {
    const [b] = await start('b');
    await server.stop();
    const [a] = await start('a'); // boots with Redis down: it has read nothing yet
    a.send('pause');
    await vi.waitFor(async () => expect(await a.paused()).toBe(true), { timeout: 5000 });
    a.signal('SIGSTOP');
    await server.restart();
    await sleep(2500);
    b.send('pause');
    await sleep(500);
    b.send('resume'); // later than A's pause: the cluster's state is "resumed"
    await vi.waitFor(async () => expect((await stored(server)).paused).toBe('0'), { timeout: 10_000 });
    a.signal('SIGCONT');
    await sleep(3000);
    expect({ redis: (await stored(server)).paused, a: await a.paused(), b: await b.paused() }).toEqual({
      redis: '0',
      a: false,
      b: false,
    });
  }, 60_000);
});
