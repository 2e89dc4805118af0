import { Injectable, type INestApplication, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { get } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { ConcurrencyModule, DurableSupervisor, TaskHandler } from 'nestjs-concurrency';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';

const CHROMIUM = '/usr/bin/chromium';
const chromiumAvailable = existsSync(CHROMIUM) || process.env.REQUIRE_CHROMIUM === '1';

/** A "Redis" that accepts connections and never answers: every call waits out durable.storeTimeout. */
async function silentRedis(): Promise<{ url: string; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `redis://127.0.0.1:${port}`,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/** The SSE messages the dashboard sends within `ms`, parsed. */
function eventsWithin(port: number, ms: number): Promise<Array<Record<string, unknown>>> {
  return new Promise((resolve, reject) => {
    const request = get({ host: '127.0.0.1', port, path: '/_concurrency/events' }, (res) => {
      res.setEncoding('utf8');
      let text = '';
      res.on('data', (chunk: string) => (text += chunk));
      setTimeout(() => {
        request.destroy();
        const messages = text
          .split('\n\n')
          .map((block) => block.split('\n').find((line) => line.startsWith('data: ')))
          .filter((line): line is string => line !== undefined)
          .map((line) => JSON.parse(line.slice('data: '.length)) as Record<string, unknown>);
        resolve(messages);
      }, ms);
    });
    request.on('error', reject);
  });
}

describe('the dashboard while Redis (durable tasks) is slow to answer', () => {
  let redis: Awaited<ReturnType<typeof silentRedis>>;
  let app: INestApplication;

  beforeAll(async () => {
    redis = await silentRedis();
    @Module({
      imports: [
        ConcurrencyModule.forRoot({
          dashboard: { guard: false },
          durable: { connection: redis.url, workers: false, storeTimeout: 2000 },
        }),
      ],
    })
    class AppModule {}
    app = await NestFactory.create(AppModule, { logger: false, abortOnError: false });
    await app.listen(0, '127.0.0.1');
  });
  afterAll(async () => {
    await app.close();
    await redis.close();
  });

  it('keeps sending a snapshot each second, its durable part marked stale', async () => {
    const { port } = app.getHttpServer().address() as { port: number };
    const messages = await eventsWithin(port, 3500);
    expect(messages.length).toBeGreaterThanOrEqual(3);
    for (const message of messages) {
      expect(message.supervisors).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'default' })]));
      // Stale while the read is pending; the read's own storeTimeout error when it ends within a snapshot's wait.
      expect(message.durable).toEqual(expect.objectContaining({ queues: [], error: expect.any(String) }));
    }
    expect(messages[0].durable).toEqual(expect.objectContaining({ stale: true }));
    expect((messages[0].durable as { error: string }).error).toContain('no answer yet');
  });
});

describe.skipIf(!redisAvailable)('the dashboard with durable tasks (real redis-server)', () => {
  let server: RedisServer;
  let app: INestApplication;
  let release: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));

  @Injectable()
  class Handlers {
    @TaskHandler('broken', { restart: 'temporary' })
    broken(): never {
      throw new Error('always fails');
    }

    @TaskHandler('loud', { restart: 'temporary' })
    loud(): never {
      throw new Error(`bad \u202Egnp.exe ${'e'.repeat(2000)}`);
    }

    @TaskHandler('held', { restart: 'temporary', concurrency: 1 })
    async held(): Promise<void> {
      await held;
    }
  }

  beforeAll(async () => {
    server = await RedisServer.start();
    @Module({
      imports: [ConcurrencyModule.forRoot({ dashboard: { guard: false }, durable: { connection: server.url } })],
      providers: [Handlers],
    })
    class AppModule {}
    app = await NestFactory.create(AppModule, { logger: false, abortOnError: false });
    await app.listen(0, '127.0.0.1');
  });
  afterAll(async () => {
    release();
    await app?.close();
    await server?.stop();
  });

  it('shows per task name how many children wait, run and failed for good, cluster-wide', async () => {
    const durable = app.get(DurableSupervisor);
    const failing = await durable.async('broken', null);
    await expect(failing.await(10_000)).rejects.toThrow(/always fails/);
    await durable.startChild('held', null);
    await durable.startChild('held', null); // concurrency 1: this one waits
    const port = (app.getHttpServer().address() as { port: number }).port;
    await vi.waitFor(
      async () => {
        const res = await fetch(`http://127.0.0.1:${port}/_concurrency/snapshot`);
        const snapshot = (await res.json()) as { durable: { queues: unknown[] } };
        expect(snapshot.durable.queues).toEqual(
          expect.arrayContaining([
            { task: 'broken', waiting: 0, running: 0, failed: 1 },
            { task: 'held', waiting: 1, running: 1, failed: 0 },
          ]),
        );
      },
      { timeout: 10_000, interval: 200 },
    );
  });

  it('lists the recent failures with task, id, attempt, time and error (cut, bidi neutralised), and the page shows them', async () => {
    const durable = app.get(DurableSupervisor);
    const before = Date.now();
    const failing = await durable.async('loud', null, { id: 'loud-1' });
    await expect(failing.await(10_000)).rejects.toThrow(/bad/);
    const port = (app.getHttpServer().address() as { port: number }).port;
    type Failure = { id: string; task: string; attempt: number; failedAt: number; error: string };
    let failure: Failure | undefined;
    await vi.waitFor(
      async () => {
        const res = await fetch(`http://127.0.0.1:${port}/_concurrency/snapshot`);
        const snapshot = (await res.json()) as { durable: { failures: Failure[] } };
        failure = snapshot.durable.failures.find((f) => f.id === 'loud-1');
        expect(failure).toBeDefined();
      },
      { timeout: 10_000, interval: 200 },
    );
    expect(failure).toMatchObject({ task: 'loud', attempt: 1 });
    expect(failure!.failedAt).toBeGreaterThanOrEqual(before - 1000);
    expect(failure!.failedAt).toBeLessThanOrEqual(Date.now() + 1000);
    expect(failure!.error).toHaveLength(500);
    expect(failure!.error.startsWith('bad \uFFFDgnp.exe eee')).toBe(true);
    expect(failure!.error.endsWith('…')).toBe(true);
    if (!chromiumAvailable) return;
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run'],
    });
    try {
      const page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${port}/_concurrency`);
      const row = page.locator('#durable tr[data-durable-failure]', { hasText: 'loud-1' });
      await row.waitFor({ timeout: 10_000 });
      const text = (await row.textContent())!;
      expect(text).toContain('loud');
      expect(text).toContain('bad \uFFFDgnp.exe');
      expect(text).not.toContain('\u202E');
      expect(text).toMatch(/ago/);
    } finally {
      await browser.close();
    }
  });

  it('bounds the recent failures per task name and in all, newest first', async () => {
    const durable = app.get(DurableSupervisor);
    for (const id of ['cap-1', 'cap-2']) {
      const failing = await durable.async('broken', null, { id });
      await expect(failing.await(10_000)).rejects.toThrow(/always fails/);
    }
    const perTask = (await durable.recentFailures(1, 50)).filter((f) => f.task === 'broken');
    expect(perTask.map((f) => f.id)).toEqual(['cap-2']);
    expect(await durable.recentFailures(20, 1)).toHaveLength(1);
    const all = await durable.recentFailures(20, 50);
    expect(all.map((f) => f.failedAt)).toEqual(all.map((f) => f.failedAt).sort((a, b) => b - a));
  });
});
