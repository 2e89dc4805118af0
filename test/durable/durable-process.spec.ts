import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { DurableSupervisor } from 'nestjs-concurrency';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';
import { bootDurable, type DurableApp, uniquePrefix } from './helpers.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const out = `${root}node_modules/.cache/nestjs-concurrency-durable-process`;
const script = `${out}/test/durable/fixtures/durable-worker.process.js`;
const STALLED_TIMEOUT = 2000;

/** A worker instance in its own process; resolves once it has booted. */
class WorkerProcess {
  readonly lines: string[] = [];
  private readonly child: ChildProcess;
  readonly ready: Promise<void>;

  constructor(
    readonly name: string,
    env: Record<string, string>,
  ) {
    this.child = spawn(process.execPath, [script], {
      env: { ...process.env, ...env, INSTANCE: name },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let buffer = '';
    this.ready = new Promise((resolve, reject) => {
      this.child.once('exit', (code, signal) => reject(new Error(`${name} exited (${code ?? signal}) before ready`)));
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

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async kill(signal: NodeJS.Signals): Promise<void> {
    if (!this.alive) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill(signal);
    await exited;
  }
}

describe.skipIf(!redisAvailable)('durable: a task whose process is SIGKILLed is completed by another process', () => {
  let server: RedisServer;
  let api: DurableApp;
  const workers: WorkerProcess[] = [];

  beforeAll(async () => {
    // The worker process runs the compiled library (Node 20 does not run TypeScript).
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    execFileSync(process.execPath, [tsc, '-p', `${root}test/durable/fixtures/tsconfig.process.json`], {
      cwd: root,
      stdio: 'inherit',
    });
    writeFileSync(`${out}/package.json`, '{ "type": "module" }\n');
    server = await RedisServer.start();
  }, 120_000);
  afterAll(async () => {
    await Promise.all(workers.map((w) => w.kill('SIGKILL')));
    await api?.app.close();
    await server?.stop();
  });

  it('takes the task back within stalledTimeout and runs it to completion on the second process', async () => {
    const prefix = uniquePrefix();
    const env = { REDIS_URL: server.url, PREFIX: prefix, STALLED_TIMEOUT: String(STALLED_TIMEOUT) };
    api = await bootDurable({ connection: server.url, prefix, workers: false });
    const first = new WorkerProcess('first', env);
    workers.push(first);
    await first.ready;

    const task = await api.app
      .get(DurableSupervisor)
      .async<{ ms: number }, { instance: string }>('chunk', { ms: 3000 });
    await vi.waitFor(() => expect(first.lines).toContain(`started ${task.id} 1`), { timeout: 15_000, interval: 20 });
    await first.kill('SIGKILL');
    const killedAt = Date.now();

    const second = new WorkerProcess('second', env);
    workers.push(second);
    await second.ready;
    expect(await task.await(30_000)).toEqual({ instance: 'second' });
    // At least once: it ran on both; the run cut short by the kill is not counted as a failed attempt.
    expect(second.lines).toContain(`started ${task.id} 1`);
    // Taken back after the dead process's lock expired and a stalled check ran: within stalledTimeout, plus the 3 s
    // of the run itself and a generous margin for a loaded machine.
    expect(Date.now() - killedAt).toBeLessThan(STALLED_TIMEOUT + 3000 + 5000);
    await second.kill('SIGTERM');
  }, 90_000);
});
