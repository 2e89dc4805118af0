import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';

// The cluster single flight with each instance in a Node process of its own (test/fixtures/cache-cluster.process.ts,
// compiled, started with node) on one real redis-server: no shared event loop, no shared module state.

const root = fileURLToPath(new URL('../..', import.meta.url));
const out = `${root}node_modules/.cache/nestjs-concurrency-cache-process`;
const script = `${out}/test/fixtures/cache-cluster.process.js`;
const WAIT = 2000;
const STORE_TIMEOUT = 300;

interface Reply {
  id: number;
  values: string[];
  elapsedMs: number;
  stats: Record<string, number>;
  error?: string;
}

class CacheProcess {
  readonly computing: string[] = [];
  private readonly child: ChildProcess;
  private readonly replies = new Map<number, (reply: Reply) => void>();
  private seq = 0;
  readonly ready: Promise<void>;
  readonly exited: Promise<unknown>;

  constructor(
    readonly name: string,
    env: Record<string, string>,
  ) {
    this.child = spawn(process.execPath, [script], {
      env: { ...process.env, ...env, INSTANCE: name, WAIT: String(WAIT) },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    this.exited = new Promise((resolve) => this.child.once('exit', resolve));
    let buffer = '';
    this.ready = new Promise((resolve, reject) => {
      this.child.once('exit', (code, signal) => reject(new Error(`${name} exited (${code ?? signal}) before ready`)));
      this.child.stdout!.on('data', (chunk: Buffer) => {
        buffer += chunk.toString();
        const parts = buffer.split('\n');
        buffer = parts.pop()!;
        for (const line of parts) {
          if (line === 'ready') resolve();
          else if (line.startsWith('computing ')) this.computing.push(JSON.parse(line.slice(10)) as string);
          else if (line.startsWith('{')) {
            const reply = JSON.parse(line) as Reply;
            this.replies.get(reply.id)?.(reply);
          }
        }
      });
    });
    this.ready.catch(() => undefined);
  }

  /** `n` concurrent getOrStore(key) calls in this process; the computation takes `ms`. */
  burst(key: string, n: number, ms: number, ttl = 60_000): Promise<Reply> {
    const id = ++this.seq;
    const reply = new Promise<Reply>((resolve) => this.replies.set(id, resolve));
    this.child.stdin!.write(`${JSON.stringify({ id, op: 'burst', key, n, ms, ttl })}\n`);
    return reply;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  signal(signal: NodeJS.Signals): void {
    if (this.alive) this.child.kill(signal);
  }

  async kill(): Promise<void> {
    if (!this.alive) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

const computations = (all: CacheProcess[], key: string) =>
  all.reduce((sum, p) => sum + p.computing.filter((k) => k === key).length, 0);

describe.skipIf(!redisAvailable)('cache.singleFlight: cluster, one Node process per instance, one real Redis', () => {
  let redis: RedisServer;
  let raw: Redis;
  let processes: CacheProcess[] = [];
  let namespace = '';
  let seq = 0;

  beforeAll(() => {
    // The instances run the compiled library (Node 20 does not run TypeScript).
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    execFileSync(process.execPath, [tsc, '-p', `${root}test/fixtures/tsconfig.cache-process.json`], {
      cwd: root,
      stdio: 'inherit',
    });
    writeFileSync(`${out}/package.json`, '{ "type": "module" }\n');
  }, 180_000);

  beforeEach(async () => {
    redis = await RedisServer.start();
    raw = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    raw.on('error', () => undefined);
    namespace = `proc-${process.pid}-${++seq}`;
  });

  afterEach(async () => {
    await Promise.all(processes.splice(0).map((p) => p.kill()));
    raw.disconnect();
    await redis?.stop();
  });

  /** Starts `skews.length` instances (each with its clock shifted by its skew) and waits until each listens. */
  async function start(skews: number[], listening = true): Promise<CacheProcess[]> {
    const started = skews.map(
      (skew, i) =>
        new CacheProcess(`p${i}`, { REDIS_URL: redis.url, NAMESPACE: namespace, CLOCK_SKEW_MS: String(skew) }),
    );
    processes.push(...started);
    await Promise.all(started.map((p) => p.ready));
    if (!listening) return started;
    const channel = `${namespace}:nestjs-concurrency:cache:flight`;
    await vi.waitFor(
      async () => {
        const [, count] = (await raw.pubsub('NUMSUB', channel)) as [string, number];
        expect(count).toBeGreaterThanOrEqual(started.length);
      },
      { timeout: 20_000, interval: 50 },
    );
    return started;
  }

  it('computes a cold key once for 1,000 concurrent calls over 4 processes', async () => {
    const all = await start([0, 0, 0, 0]);
    const replies = await Promise.all(all.map((p) => p.burst('cold', 250, 300)));
    expect(replies.map((r) => r.error)).toEqual([undefined, undefined, undefined, undefined]);
    expect(computations(all, 'cold')).toBe(1);
    // every process answered all of its 250 calls with the one computed value
    expect(new Set(replies.flatMap((r) => r.values)).size).toBe(1);
    expect(replies.reduce((sum, r) => sum + r.stats.clusterFallbacks, 0)).toBe(0);
    expect(replies.reduce((sum, r) => sum + r.stats.misses, 0)).toBe(1);
  }, 60_000);

  it('answers the followers of a SIGKILLed leader within singleFlightWait plus two storeTimeouts', async () => {
    const [leader, ...followers] = await start([0, 0, 0, 0]);
    void leader.burst('killed', 50, 60_000);
    await vi.waitFor(() => expect(leader.computing).toEqual(['killed']), { timeout: 20_000, interval: 10 });
    const waiting = followers.map((p) => p.burst('killed', 50, 100));
    // the followers are waiting on the lease (their own computation has not started)
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(computations(followers, 'killed')).toBe(0);
    await leader.kill();
    const replies = await Promise.all(waiting);
    expect(replies.map((r) => r.error)).toEqual([undefined, undefined, undefined]);
    // documented: the others compute themselves after singleFlightWait; each process at most once (its own calls
    // coalesce), measured inside each process from its first call (generous slack for a loaded machine)
    for (const reply of replies) expect(reply.elapsedMs).toBeLessThan(WAIT + 2 * STORE_TIMEOUT + 100 + 3000);
    for (const follower of followers) expect(follower.computing.length).toBeLessThanOrEqual(1);
    expect(new Set(replies.map((r) => r.values.length))).toEqual(new Set([1]));
  }, 60_000);

  it('lets no follower hang past its bound while redis-server is frozen (SIGSTOP)', async () => {
    const [leader, ...followers] = await start([0, 0, 0, 0]);
    const led = leader.burst('frozen', 50, 500);
    await vi.waitFor(() => expect(leader.computing).toEqual(['frozen']), { timeout: 20_000, interval: 10 });
    const pid = Number((await raw.info('server')).match(/process_id:(\d+)/)?.[1]);
    expect(pid).toBeGreaterThan(0);
    const waiting = followers.map((p) => p.burst('frozen', 50, 100));
    process.kill(pid, 'SIGSTOP');
    try {
      const replies = await Promise.all([led, ...waiting]);
      expect(replies.map((r) => r.error)).toEqual([undefined, undefined, undefined, undefined]);
      for (const reply of replies) expect(reply.elapsedMs).toBeLessThan(WAIT + 2 * STORE_TIMEOUT + 100 + 3000);
      for (const p of [leader, ...followers]) expect(p.computing.length).toBeLessThanOrEqual(1);
    } finally {
      process.kill(pid, 'SIGCONT');
    }
  }, 60_000);

  it("serves the leader's value to followers whose pub/sub connections are killed (CLIENT KILL TYPE pubsub): no second computation", async () => {
    const [leader, ...followers] = await start([0, 0, 0, 0]);
    const led = leader.burst('unsubscribed', 50, 1500);
    await vi.waitFor(() => expect(leader.computing).toEqual(['unsubscribed']), { timeout: 20_000, interval: 10 });
    const waiting = followers.map((p) => p.burst('unsubscribed', 50, 100));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(Number(await raw.client('KILL', 'TYPE', 'pubsub'))).toBeGreaterThanOrEqual(1);
    const replies = await Promise.all([led, ...waiting]);
    expect(replies.map((r) => r.error)).toEqual([undefined, undefined, undefined, undefined]);
    expect(computations([leader, ...followers], 'unsubscribed')).toBe(1);
    expect(new Set(replies.flatMap((r) => r.values)).size).toBe(1);
  }, 60_000);

  it('answers the followers of a frozen leader process (SIGSTOP) within the bound, and the leader once it resumes', async () => {
    const [leader, ...followers] = await start([0, 0, 0]);
    const led = leader.burst('stopped', 50, 800);
    await vi.waitFor(() => expect(leader.computing).toEqual(['stopped']), { timeout: 20_000, interval: 10 });
    leader.signal('SIGSTOP');
    try {
      const replies = await Promise.all(followers.map((p) => p.burst('stopped', 50, 100)));
      expect(replies.map((r) => r.error)).toEqual([undefined, undefined]);
      for (const reply of replies) expect(reply.elapsedMs).toBeLessThan(WAIT + 2 * STORE_TIMEOUT + 100 + 3000);
      for (const follower of followers) expect(follower.computing.length).toBeLessThanOrEqual(1);
    } finally {
      leader.signal('SIGCONT');
    }
    const resumed = await led;
    expect(resumed.error).toBeUndefined();
    expect(resumed.values).toHaveLength(1);
    // its late release (compare-and-set on its token) leaves no lease behind
    await vi.waitFor(async () => expect(await raw.keys('*lease*')).toEqual([]), { timeout: 10_000, interval: 50 });
  }, 60_000);

  it('computes each hostile key once over 3 processes (glob characters, separators, newlines, lease-like names)', async () => {
    const all = await start([0, 0, 0]);
    const keys = ['a:b', '*', 'x?[y]', 'lease:k', 'nestjs-concurrency:cache:flight', 'line\nbreak', ' ', 'ü\u202e😀'];
    for (const key of keys) {
      const replies = await Promise.all(all.map((p) => p.burst(key, 30, 200)));
      expect(replies.map((r) => r.error)).toEqual([undefined, undefined, undefined]);
      expect({ key, computations: computations(all, key) }).toEqual({ key, computations: 1 });
      expect(new Set(replies.flatMap((r) => r.values)).size).toBe(1);
    }
  }, 90_000);

  it('boots with redis-server down, answers within the bound, and single-flights across processes once Redis is back', async () => {
    await redis.stop();
    const all = await start([0, 0], false);
    const down = await Promise.all(all.map((p) => p.burst('outage', 20, 100)));
    expect(down.map((r) => r.error)).toEqual([undefined, undefined]);
    for (const reply of down) expect(reply.elapsedMs).toBeLessThan(WAIT + 2 * STORE_TIMEOUT + 100 + 3000);
    expect(computations(all, 'outage')).toBeLessThanOrEqual(2);
    await redis.restart();
    raw.disconnect();
    raw = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    raw.on('error', () => undefined);
    const channel = `${namespace}:nestjs-concurrency:cache:flight`;
    await vi.waitFor(
      async () => {
        const [, count] = (await raw.pubsub('NUMSUB', channel)) as [string, number];
        expect(count).toBe(2);
      },
      { timeout: 30_000, interval: 100 },
    );
    await new Promise((resolve) => setTimeout(resolve, 1500)); // past the stores' breaker (1 s)
    const back = await Promise.all(all.map((p) => p.burst('after-outage', 100, 500)));
    expect(back.map((r) => r.error)).toEqual([undefined, undefined]);
    expect(computations(all, 'after-outage')).toBe(1);
  }, 90_000);

  it('computes once with clocks 30 s apart, and an entry lives as long as Redis keeps it (PTTL), not by a skewed clock', async () => {
    const all = await start([30_000, -30_000, 0, 12_345]);
    const replies = await Promise.all(all.map((p) => p.burst('skewed', 100, 300, 5000)));
    expect(replies.map((r) => r.error)).toEqual([undefined, undefined, undefined, undefined]);
    expect(computations(all, 'skewed')).toBe(1);
    expect(new Set(replies.flatMap((r) => r.values)).size).toBe(1);
    // Redis holds the entry for the ttl: the instance 30 s ahead still hits it, none computes again
    const entries = (await raw.keys(`${namespace}*skewed`)).filter((key) => !key.includes('lease'));
    expect(entries).toHaveLength(1);
    expect(await raw.pttl(entries[0])).toBeGreaterThan(0);
    const again = await Promise.all(all.map((p) => p.burst('skewed', 10, 300, 5000)));
    expect(computations(all, 'skewed')).toBe(1);
    expect(new Set(again.flatMap((r) => r.values))).toEqual(new Set(replies.flatMap((r) => r.values)));
    // once Redis dropped it, the instance 30 s behind does not keep serving its copy: one new computation
    await vi.waitFor(async () => expect(await raw.exists(entries[0])).toBe(0), {
      timeout: 10_000,
      interval: 50,
    });
    const behind = await all[1].burst('skewed', 10, 300, 5000);
    expect(behind.error).toBeUndefined();
    expect(computations(all, 'skewed')).toBe(2);
  }, 60_000);
});
