import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { DurableSupervisor } from 'nestjs-concurrency';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';
import { bootDurable, type DurableApp, uniquePrefix } from './helpers.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const out = `${root}node_modules/.cache/nestjs-concurrency-batch-process`;
const script = `${out}/test/fixtures/batch-worker.process.js`;
const STALLED_TIMEOUT = 2000;

/** An app instance in its own process (test/fixtures/batch-worker.process.ts). */
class AppProcess {
  readonly lines: string[] = [];
  private readonly child: ChildProcess;
  readonly ready: Promise<void>;
  readonly stored: Promise<void>;

  constructor(
    readonly name: string,
    env: Record<string, string>,
  ) {
    this.child = spawn(process.execPath, [script], {
      env: { ...process.env, ...env, INSTANCE: name },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let buffer = '';
    let onStored!: () => void;
    this.stored = new Promise((resolve) => (onStored = resolve));
    this.ready = new Promise((resolve, reject) => {
      this.child.once('exit', (code, signal) => reject(new Error(`${name} exited (${code ?? signal}) before ready`)));
      this.child.stdout!.on('data', (chunk: Buffer) => {
        buffer += chunk.toString();
        const parts = buffer.split('\n');
        buffer = parts.pop()!;
        for (const line of parts) {
          this.lines.push(line);
          if (line === 'ready') resolve();
          if (line === 'stored') onStored();
        }
      });
    });
    this.ready.catch(() => undefined);
  }

  /** Attempt intervals printed by the handler: [n, start, end?]. */
  intervals(): Array<{ n: number; start: number; end: number | undefined }> {
    const byN = new Map<number, { n: number; start: number; end: number | undefined }[]>();
    const all: Array<{ n: number; start: number; end: number | undefined }> = [];
    for (const line of this.lines) {
      const [kind, n, at] = line.split(' ');
      if (kind === 'start') {
        const entry = { n: Number(n), start: Number(at), end: undefined };
        all.push(entry);
        byN.set(entry.n, [...(byN.get(entry.n) ?? []), entry]);
      } else if (kind === 'end') {
        const open = byN.get(Number(n))?.find((e) => e.end === undefined);
        if (open) open.end = Number(at);
      }
    }
    return all;
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

/** The most attempts running at one instant, from intervals (an attempt without end runs until `now`). */
function maxOverlap(intervals: Array<{ start: number; end: number | undefined }>, now = Date.now()): number {
  const points = intervals.flatMap((i) => [
    [i.start, 1],
    [i.end ?? now, -1],
  ]);
  // An end and a start at the same ms: the end first (they did not overlap).
  points.sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!);
  let running = 0;
  let max = 0;
  for (const [, delta] of points) max = Math.max(max, (running += delta!));
  return max;
}

describe.skipIf(!redisAvailable)('durable batches across processes (real redis-server, SIGKILL)', () => {
  let server: RedisServer;
  const apps: DurableApp[] = [];
  const processes: AppProcess[] = [];

  beforeAll(async () => {
    const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
    execFileSync(process.execPath, [tsc, '-p', `${root}test/fixtures/tsconfig.batch-process.json`], {
      cwd: root,
      stdio: 'inherit',
    });
    writeFileSync(`${out}/package.json`, '{ "type": "module" }\n');
    server = await RedisServer.start();
  }, 120_000);
  afterEach(async () => {
    await Promise.all(processes.splice(0).map((p) => p.kill('SIGKILL')));
    await Promise.all(apps.splice(0).map((a) => a.app.close()));
  });
  afterAll(async () => {
    await server?.stop();
  });

  const spawnApp = async (name: string, env: Record<string, string>) => {
    const p = new AppProcess(name, { REDIS_URL: server.url, STALLED_TIMEOUT: String(STALLED_TIMEOUT), ...env });
    processes.push(p);
    await p.ready;
    return p;
  };
  const api = async (prefix: string) => {
    const app = await bootDurable({ connection: server.url, prefix, workers: false });
    apps.push(app);
    return app.app.get(DurableSupervisor);
  };

  it('never runs more than `concurrency` items of a batch at once across two worker processes', async () => {
    const prefix = uniquePrefix();
    const [a, b] = await Promise.all([spawnApp('a', { PREFIX: prefix }), spawnApp('b', { PREFIX: prefix })]);
    const supervisor = await api(prefix);
    const inputs = Array.from({ length: 40 }, (_, n) => ({ n, ms: 150 }));
    const results = await supervisor.map<object, { n: number; instance: string }>('batchItem', inputs, {
      concurrency: 3,
    });
    expect(results.map((r) => r.n)).toEqual(inputs.map((i) => i.n));
    expect(new Set(results.map((r) => r.instance))).toEqual(new Set(['a', 'b']));
    const intervals = [...a.intervals(), ...b.intervals()];
    expect(intervals).toHaveLength(40);
    // Each process runs up to 8 at once: the bound comes from the batch, across both.
    expect(maxOverlap(intervals)).toBeLessThanOrEqual(3);
    expect(maxOverlap(intervals)).toBeGreaterThanOrEqual(2);
  }, 60_000);

  it('completes a batch whose caller was SIGKILLed: getBatch() on another instance reads every result', async () => {
    const prefix = uniquePrefix();
    await Promise.all([spawnApp('a', { PREFIX: prefix }), spawnApp('b', { PREFIX: prefix })]);
    const caller = await spawnApp('caller', {
      PREFIX: prefix,
      ROLE: 'caller',
      ITEMS: '30',
      MS: '200',
      BATCH_ID: 'orphan',
    });
    await caller.stored;
    await caller.kill('SIGKILL');
    const supervisor = await api(prefix);
    const batch = await supervisor.getBatch<{ n: number }>('orphan');
    expect(batch).toBeDefined();
    expect(batch!.task).toBe('batchItem');
    const values = await batch!.await(60_000);
    expect(values.map((v) => v.n)).toEqual(Array.from({ length: 30 }, (_, n) => n));
    expect(await batch!.progress()).toEqual({ total: 30, completed: 30, failed: 0, running: 0, waiting: 0 });
  }, 90_000);

  it('takes back the items of a SIGKILLed worker within stalledTimeout: nothing lost, the window still holds', async () => {
    const prefix = uniquePrefix();
    const [a, b] = await Promise.all([spawnApp('a', { PREFIX: prefix }), spawnApp('b', { PREFIX: prefix })]);
    const supervisor = await api(prefix);
    const inputs = Array.from({ length: 24 }, (_, n) => ({ n, ms: 400 }));
    const batch = await supervisor.batch<object, { n: number; instance: string }>('batchItem', inputs, {
      concurrency: 4,
    });
    // Kill a while one of its items runs.
    await vi.waitFor(
      () => expect(a.intervals().some((i) => i.end === undefined) && a.intervals().length >= 2).toBe(true),
      { timeout: 20_000, interval: 10 },
    );
    const killedAt = Date.now();
    const runningOnA = a
      .intervals()
      .filter((i) => i.end === undefined)
      .map((i) => i.n);
    await a.kill('SIGKILL');
    const values = await batch.await(60_000);
    expect(values.map((v) => v.n)).toEqual(inputs.map((i) => i.n));
    // Every item that was running on a ran again on b, and finished there, within the documented bound.
    for (const n of runningOnA) {
      const rerun = b.intervals().find((i) => i.n === n);
      expect(rerun?.end).toBeDefined();
      expect(rerun!.start - killedAt).toBeLessThan(STALLED_TIMEOUT + 3000);
      expect(values[n]!.instance).toBe('b');
    }
    // The window counted the dead instance's items until they finished elsewhere.
    const intervals = [...a.intervals().filter((i) => i.end !== undefined), ...b.intervals()];
    expect(maxOverlap(intervals)).toBeLessThanOrEqual(4);
  }, 90_000);

  it('an item that stalled more often than maxStalls fails for good in the batch: settle() does not hang', async () => {
    const prefix = uniquePrefix();
    const env = { PREFIX: prefix, MAX_STALLS: '0' };
    const a = await spawnApp('a', env);
    const supervisor = await api(prefix);
    const batch = await supervisor.batch<object, { n: number }>(
      'batchItem',
      [
        { n: 0, ms: 60_000 },
        { n: 1, ms: 10 },
      ],
      {
        concurrency: 1,
      },
    );
    await vi.waitFor(() => expect(a.intervals()).toHaveLength(1), { timeout: 20_000, interval: 10 });
    await a.kill('SIGKILL');
    await spawnApp('b', env);
    const outcomes = await batch.settle(30_000);
    expect(outcomes[0]!.status).toBe('rejected');
    expect(String((outcomes[0] as { reason: Error }).reason.message)).toMatch(/stalled|taken back/);
    expect(outcomes[1]).toMatchObject({ status: 'fulfilled', value: { n: 1 }, index: 1 });
  }, 90_000);
});
