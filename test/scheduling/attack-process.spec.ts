// Scheduling policies against real processes (SIGKILL, SIGSTOP) and a real redis-server (killed, frozen).
import { Redis } from 'ioredis';
import { RedisJobLock } from 'nestjs-concurrency';
import { AppProcess, compileFixture, root } from '../utils/app-process.js';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';

const out = `${root}node_modules/.cache/nestjs-concurrency-attack-process`;
const script = `${out}/test/scheduling/fixtures/attack-instance.process.js`;
const HOUR = 3_600_000;

interface Run {
  at: number;
  startedAt: number;
  endedAt?: number;
  aborted?: boolean;
}

/** An app instance in its own process (test/scheduling/fixtures/attack-instance.process.ts, compiled). */
class Instance extends AppProcess {
  readonly runs: Run[] = [];
  readonly unhandled: string[] = [];
  readonly logs: string[] = [];
  constructor(name: string, env: Record<string, string>) {
    super(name, script, { ...env, INSTANCE: name });
  }
  protected override onLine(line: string): void {
    const [word, a, b, c] = line.split(' ');
    if (word === 'start') this.runs.push({ at: Number(a), startedAt: Number(b) });
    else if (word === 'end') {
      const run = this.runs.findLast((r) => r.at === Number(a) && r.endedAt === undefined);
      if (run) Object.assign(run, { endedAt: Number(c), aborted: b === '1' });
    } else if (word === 'unhandled') this.unhandled.push(line);
    else this.logs.push(line);
  }
  get ats(): number[] {
    return this.runs.map((r) => r.at);
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(!redisAvailable)('scheduling policies across processes (real redis-server, SIGKILL/SIGSTOP)', () => {
  let server: RedisServer;
  const instances: Instance[] = [];
  const clients: Redis[] = [];

  beforeAll(() => {
    compileFixture(`${root}test/scheduling/fixtures/tsconfig.attack.json`, out);
  }, 240_000);
  beforeEach(async () => {
    server = await RedisServer.start();
  });
  afterEach(async () => {
    await Promise.all(instances.splice(0).map((i) => i.kill()));
    for (const client of clients.splice(0)) client.disconnect();
    server.thaw();
    await server.stop();
  });

  const lock = async () => {
    const redis = new Redis(server.url, { maxRetriesPerRequest: 1, lazyConnect: true });
    redis.on('error', () => {});
    await redis.connect();
    clients.push(redis);
    return new RedisJobLock(redis);
  };
  const start = (name: string, env: Record<string, string>) => {
    const instance = new Instance(name, { REDIS_URL: server.url, ...env });
    instances.push(instance);
    return instance;
  };

  it("catchUp 'all': the instance catching up is SIGKILLed mid-run; the missed ticks left run once on another", async () => {
    const slot = Math.floor(Date.now() / HOUR) * HOUR;
    if (Date.now() - slot > HOUR - 60_000) return; // the slots would move under the test (a minute an hour)
    const seed = slot - 3 * HOUR;
    await (await lock()).recordTick('report', seed);
    const env = {
      JOB: 'report',
      INTERVAL: String(HOUR),
      WORK: '12000',
      TTL: '2000',
      CATCH_UP: 'all',
      WINDOW: '86400000',
    };
    const a = start('a', env);
    await a.ready;
    await vi.waitFor(() => expect(a.ats).toEqual([seed + HOUR]), { timeout: 10_000 });
    // b boots while a catches up: a holds the catch-up.
    const b = start('b', env);
    await b.ready;
    await sleep(500);
    expect(b.ats).toEqual([]);
    await a.kill();
    expect(a.ats).toEqual([seed + HOUR]);
    // The tick a was running is not run again (as any tick whose instance died); the two after it run once, on b.
    await vi.waitFor(() => expect(b.ats).toEqual([seed + 2 * HOUR, seed + 3 * HOUR]), { timeout: 45_000 });
    expect(b.unhandled).toEqual([]);
  }, 90_000);

  it("catchUp 'all': the ticks left by a SIGKILLed instance still run once while another one's ticks go on", async () => {
    const I = 4000;
    const seed = Math.floor(Date.now() / I) * I - 3 * I;
    await (await lock()).recordTick('sync', seed);
    const env = { JOB: 'sync', INTERVAL: String(I), WORK: '10000', TTL: '5000', CATCH_UP: 'all', WINDOW: '600000' };
    const a = start('a', env);
    await a.ready;
    await vi.waitFor(() => expect(a.ats).toEqual([seed + I]), { timeout: 10_000 });
    const b = start('b', env);
    await b.ready;
    await a.kill();
    // b's own ticks move the last-tick watermark past the ticks a had left; they still run, once, oldest first. (a
    // may have started the second one before it was killed on a loaded machine, and b's own ticks may come first.)
    const owed = [seed + I, seed + 2 * I, seed + 3 * I];
    const slots = () => [...a.ats, ...b.ats].map((t) => t - (t % I)); // a tick is named by its slot in the lock
    await vi.waitFor(() => expect(owed.filter((t) => !slots().includes(t))).toEqual([]), { timeout: 45_000 });
    const caughtUp = b.ats.filter((t) => owed.includes(t));
    expect(caughtUp).toEqual([...caughtUp].sort((x, y) => x - y));
    expect(new Set(slots()).size).toBe(slots().length);
    expect(b.unhandled).toEqual([]);
  }, 90_000);

  it('boots with Redis unreachable, then catches up once Redis answers; never an unhandled rejection', async () => {
    const slot = Math.floor(Date.now() / HOUR) * HOUR;
    if (Date.now() - slot > HOUR - 60_000) return; // the slots would move under the test (a minute an hour)
    const seed = slot - 3 * HOUR;
    await (await lock()).recordTick('nightly', seed);
    server.freeze(); // the data stays; nothing answers
    const env = { JOB: 'nightly', INTERVAL: String(HOUR), WORK: '10', CATCH_UP: 'all', WINDOW: '86400000' };
    const a = start('a', env);
    const bootedIn = Date.now();
    await a.ready; // boot does not wait for Redis
    expect(Date.now() - bootedIn).toBeLessThan(20_000);
    await sleep(3000);
    expect(a.ats).toEqual([]);
    server.thaw();
    await vi.waitFor(() => expect(a.ats).toEqual([seed + HOUR, seed + 2 * HOUR, seed + 3 * HOUR]), {
      timeout: 20_000,
    });
    expect(a.unhandled).toEqual([]);
  }, 60_000);

  it('cancel-previous: a run on a SIGSTOPped process ends soon after SIGCONT once another took the job over', async () => {
    const env = { JOB: 'refresh', INTERVAL: '6000', WORK: '60000', TTL: '1000', OVERLAP: 'cancel-previous' };
    const a = start('a', env);
    const b = start('b', env);
    await Promise.all([a.ready, b.ready]);
    const going = (i: Instance) => i.runs.find((r) => r.endedAt === undefined);
    await vi.waitFor(() => expect(going(a) ?? going(b)).toBeDefined(), { timeout: 20_000 });
    const [x, y] = going(a) ? [a, b] : [b, a];
    const stale = going(x)!;
    x.signal('SIGSTOP'); // x cannot see a cancel request nor extend its running lease
    // y's next tick waits for the running lease (it expires after ttl), then runs.
    await vi.waitFor(() => expect(going(y)).toBeDefined(), { timeout: 20_000 });
    const took = going(y)!;
    const thawedAt = Date.now();
    x.signal('SIGCONT');
    // x finds its running lease taken at its next extension and aborts its run: two runs overlap only briefly.
    await vi.waitFor(() => expect(stale.endedAt).toBeDefined(), { timeout: 20_000 });
    expect(stale.aborted).toBe(true);
    expect(stale.endedAt! - thawedAt).toBeLessThan(2500);
    expect(took.endedAt).toBeUndefined(); // y's run was not the one cancelled
    expect([...a.unhandled, ...b.unhandled]).toEqual([]);
  }, 90_000);
});
