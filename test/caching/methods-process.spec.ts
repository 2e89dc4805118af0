import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const out = `${root}node_modules/.cache/nestjs-concurrency-method-cache-process`;
const script = `${out}/test/caching/fixtures/method-cache.process.js`;

/** An app instance in its own process; `ready` resolves once it has booted. */
class AppProcess {
  readonly lines: string[] = [];
  private readonly child: ChildProcess;
  readonly ready: Promise<void>;

  constructor(env: Record<string, string>) {
    this.child = spawn(process.execPath, [script], {
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let buffer = '';
    this.ready = new Promise((resolve, reject) => {
      this.child.once('exit', (code, signal) => reject(new Error(`exited (${code ?? signal}) before ready`)));
      this.child.stdout!.on('data', (chunk: Buffer) => {
        buffer += chunk.toString();
        const parts = buffer.split('\n');
        buffer = parts.pop()!;
        for (const line of parts) {
          this.lines.push(line);
          if (line === 'ready') resolve();
        }
      });
    });
    this.ready.catch(() => undefined);
  }

  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  /** The process's "done <id> ..." or "failed <id> ..." line, once printed. */
  async result(id: string): Promise<string> {
    let found: string | undefined;
    await vi.waitFor(
      () => {
        found = this.lines.find((l) => l.startsWith(`done ${id} `) || l.startsWith(`failed ${id} `));
        expect(found).toBeDefined();
      },
      { timeout: 30_000, interval: 20 },
    );
    return found!;
  }

  async kill(signal: NodeJS.Signals): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill(signal);
    await exited;
  }
}

describe.skipIf(!redisAvailable)('@Cached provider methods across app instances in separate processes', () => {
  let server: RedisServer;
  const apps: AppProcess[] = [];

  beforeAll(async () => {
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    execFileSync(process.execPath, [tsc, '-p', `${root}test/caching/fixtures/tsconfig.process.json`], {
      cwd: root,
      stdio: 'inherit',
    });
    writeFileSync(`${out}/package.json`, '{ "type": "module" }\n');
    server = await RedisServer.start();
  }, 180_000);

  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.kill('SIGKILL')));
  });

  afterAll(async () => {
    await server?.stop();
  });

  async function start(count: number, env: Record<string, string> = {}): Promise<AppProcess[]> {
    const started = Array.from({ length: count }, () => new AppProcess({ REDIS_URL: server.url, ...env }));
    apps.push(...started);
    await Promise.all(started.map((app) => app.ready));
    return started;
  }

  it('runs the method once for 3 processes x 50 concurrent calls, and every process gets typed values', async () => {
    const all = await start(3);
    for (const app of all) app.send('go q1 50');
    const results = await Promise.all(all.map((app) => app.result('q1')));
    const runs = results.map((line) => Number(line.split(' ')[2]));
    expect(runs.reduce((a, b) => a + b, 0)).toBe(1);
    expect(results.every((line) => line.endsWith(' true'))).toBe(true);
  }, 120_000);

  it('answers on the other processes when the computing process is SIGKILLed mid-computation', async () => {
    const all = await start(3, { COMPUTE_MS: '4000', WAIT_MS: '2000' });
    all[0].send('go q2 10');
    await vi.waitFor(() => expect(all[0].lines).toContain('computing q2'), { timeout: 15_000, interval: 20 });
    all[1].send('go q2 10');
    all[2].send('go q2 10');
    await new Promise((resolve) => setTimeout(resolve, 200));
    await all[0].kill('SIGKILL');
    const killedAt = Date.now();
    const results = await Promise.all([all[1].result('q2'), all[2].result('q2')]);
    expect(results.every((line) => line.startsWith('done q2 ') && line.endsWith(' true'))).toBe(true);
    // The lease of the dead process expires after singleFlightWait (2 s); then one computes (4 s). Generous bound.
    expect(Date.now() - killedAt).toBeLessThan(25_000);
  }, 120_000);
});
