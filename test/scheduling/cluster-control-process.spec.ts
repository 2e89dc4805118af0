import { AppProcess, compileFixture, root } from '../utils/app-process.js';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';

const out = `${root}node_modules/.cache/nestjs-concurrency-control-process`;
const script = `${out}/test/scheduling/fixtures/control-instance.process.js`;

/** An app instance in its own process (test/scheduling/fixtures/control-instance.process.ts, compiled). */
class Instance extends AppProcess {
  readonly runs: number[] = [];
  constructor(name: string, url: string) {
    super(name, script, { REDIS_URL: url, INSTANCE: name });
  }
  protected override onLine(line: string): void {
    if (line.startsWith('run ')) this.runs.push(Number(line.slice(4)));
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(!redisAvailable)('cluster-wide pause across processes (real redis-server, SIGSTOP/SIGKILL)', () => {
  let server: RedisServer;
  const instances: Instance[] = [];

  beforeAll(async () => {
    compileFixture(`${root}test/scheduling/fixtures/tsconfig.process.json`, out);
    server = await RedisServer.start();
  }, 240_000);
  afterAll(async () => {
    await Promise.all(instances.map((i) => i.kill()));
    await server?.stop();
  });

  it('a pause in one process stops the other within a second; a SIGSTOPped process catches up on SIGCONT', async () => {
    const a = new Instance('a', server.url);
    const b = new Instance('b', server.url);
    instances.push(a, b);
    await Promise.all([a.ready, b.ready]);
    await vi.waitFor(() => expect(b.runs.length).toBeGreaterThan(3), { timeout: 10_000 });

    const pausedAt = Date.now();
    a.send('pause');
    await sleep(1800);
    expect(b.runs.filter((t) => t > pausedAt + 1000)).toEqual([]);
    expect(a.runs.filter((t) => t > pausedAt + 200)).toEqual([]);

    // b frozen while a resumes the job: once thawed, b reads the state and runs again.
    b.child.kill('SIGSTOP');
    a.send('resume');
    await vi.waitFor(() => expect(a.runs.filter((t) => t > pausedAt + 1800).length).toBeGreaterThan(2), {
      timeout: 5000,
    });
    const thawedAt = Date.now();
    b.child.kill('SIGCONT');
    await vi.waitFor(() => expect(b.runs.filter((t) => t > thawedAt).length).toBeGreaterThan(2), { timeout: 5000 });

    // a SIGKILLed: b goes on, and a pause stored before still reaches a process booted afterwards.
    await a.kill();
    b.send('pause');
    await sleep(500);
    const c = new Instance('c', server.url);
    instances.push(c);
    await c.ready;
    await sleep(1200);
    // c may run a tick before its first read answers (boot never waits for Redis), none after.
    const settled = Date.now() - 1000;
    expect(c.runs.filter((t) => t > settled)).toEqual([]);
  }, 60_000);
});
