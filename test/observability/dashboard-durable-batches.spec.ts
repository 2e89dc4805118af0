import { Injectable, type INestApplication, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ConcurrencyModule, DurableSupervisor, type DurableTaskContext, TaskHandler } from 'nestjs-concurrency';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';

const CHROMIUM = '/usr/bin/chromium';
const chromiumAvailable = existsSync(CHROMIUM) || process.env.REQUIRE_CHROMIUM === '1';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run'];

/** Releases the items that hold ('hold' inputs) once the test has read the progress. */
let release: () => void = () => undefined;
const held = new Promise<void>((resolve) => (release = resolve));

interface Row {
  id: string;
  task: string;
  status: string;
  total: number;
  completed: number;
  failed: number;
  running: number;
  waiting: number;
}

/** Durable batches on the dashboard with their progress (a real redis-server, a worker in the app). */
describe.runIf(redisAvailable)('the dashboard with durable batches', () => {
  let redis: RedisServer;
  let app: INestApplication;
  let base: string;

  beforeAll(async () => {
    redis = await RedisServer.start();
    @Injectable()
    class Handlers {
      @TaskHandler('step', { restart: 'temporary' })
      async step(input: string, ctx: DurableTaskContext): Promise<string> {
        if (input === 'bad') throw new Error('bad input');
        if (input === 'hold') {
          await new Promise<void>((resolve) => {
            void held.then(resolve);
            ctx.signal.addEventListener('abort', () => resolve(), { once: true });
          });
        }
        return input;
      }
    }
    @Module({
      imports: [ConcurrencyModule.forRoot({ dashboard: { guard: false }, durable: { connection: redis.url } })],
      providers: [Handlers],
    })
    class AppModule {}
    app = await NestFactory.create(AppModule, { logger: false, abortOnError: false });
    await app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}/_concurrency`;
  });
  afterAll(async () => {
    release();
    await app?.close();
    await redis?.stop();
  });

  const batchesOf = async () => {
    const snapshot = (await (await fetch(`${base}/snapshot`)).json()) as {
      durable: { batches: Row[]; batchesTotal: number };
    };
    return snapshot.durable;
  };

  it('lists a batch with its progress: total, completed, failed, running, waiting and status', async () => {
    const durable = app.get(DurableSupervisor);
    await durable.batch('step', ['ok', 'bad', 'hold', 'ok', 'ok'], { id: 'nightly', concurrency: 1 });
    await vi.waitFor(
      async () =>
        expect((await batchesOf()).batches).toEqual([
          { id: 'nightly', task: 'step', status: 'running', total: 5, completed: 1, failed: 1, running: 1, waiting: 2 },
        ]),
      { timeout: 20_000, interval: 100 },
    );
    expect((await batchesOf()).batchesTotal).toBe(1);
  }, 40_000);

  it.runIf(chromiumAvailable)(
    'shows the batch and its progress in the page',
    async () => {
      const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
      try {
        const page = await browser.newPage();
        await page.goto(base);
        const row = page.locator('tr[data-durable-batch]', { hasText: 'nightly' });
        await row.waitFor({ timeout: 15_000 });
        const cells = await row.locator('td').allTextContents();
        expect(cells).toEqual(['nightly', 'step', 'running', '1 / 5', '1', '1', '2']);
      } finally {
        await browser.close();
      }
    },
    40_000,
  );

  it('shows the newest batches up to its cap and says how many there are; a finished batch shows done', async () => {
    const durable = app.get(DurableSupervisor);
    release();
    await (await durable.getBatch('nightly'))!.settle(20_000);
    for (let k = 0; k < 25; k++) await durable.batch('step', ['ok'], { id: `b${k}` });
    await vi.waitFor(
      async () => {
        const { batches, batchesTotal } = await batchesOf();
        expect(batchesTotal).toBe(26);
        expect(batches).toHaveLength(20);
        expect(batches[0]!.id).toBe('b24');
      },
      { timeout: 20_000, interval: 100 },
    );
    const { batches } = await batchesOf();
    expect(batches.map((b) => b.id)).not.toContain('nightly');
    const nightly = await durable.getBatch('nightly');
    expect(await nightly!.progress()).toEqual({ total: 5, completed: 4, failed: 1, running: 0, waiting: 0 });
    await vi.waitFor(async () => expect((await batchesOf()).batches.every((b) => b.status === 'done')).toBe(true), {
      timeout: 20_000,
      interval: 100,
    });
  }, 60_000);
});
