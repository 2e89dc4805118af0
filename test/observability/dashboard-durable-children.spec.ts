import { Injectable, type INestApplication, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ConcurrencyModule, DurableSupervisor, TaskHandler } from 'nestjs-concurrency';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';

const CHROMIUM = '/usr/bin/chromium';
const chromiumAvailable = existsSync(CHROMIUM) || process.env.REQUIRE_CHROMIUM === '1';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run'];

/** Durable children one by one on the dashboard, and Terminate for them (a real redis-server, no worker here). */
describe.runIf(redisAvailable)('the dashboard with durable tasks', () => {
  let redis: RedisServer;
  let app: INestApplication;
  let base: string;

  beforeAll(async () => {
    redis = await RedisServer.start();
    @Injectable()
    class Handlers {
      @TaskHandler('send-mail')
      send(): void {}
    }
    @Module({
      imports: [
        ConcurrencyModule.forRoot({
          dashboard: { guard: false, readOnly: false },
          durable: { connection: redis.url, workers: false },
        }),
      ],
      providers: [Handlers],
    })
    class AppModule {}
    app = await NestFactory.create(AppModule, { logger: false, abortOnError: false });
    await app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}/_concurrency`;
  });
  afterAll(async () => {
    await app?.close();
    await redis?.stop();
  });

  const action = (path: string) =>
    fetch(`${base}${path}`, { method: 'POST', headers: { 'x-concurrency-dashboard': '1' } });

  it('lists durable children one by one (id, task, state, attempt), and terminates one from its action', async () => {
    const durable = app.get(DurableSupervisor);
    await durable.startChild('send-mail', { to: 'a' }, { id: 'mail-a' });
    await durable.startChild('send-mail', { to: 'b' }, { id: 'mail-b', delay: 60_000 });
    const snapshot = await (await fetch(`${base}/snapshot`)).json();
    expect(snapshot.durable.children).toEqual(
      expect.arrayContaining([
        { id: 'mail-a', task: 'send-mail', status: 'waiting', attempt: 1, target: { task: 'send-mail', id: 'mail-a' } },
        { id: 'mail-b', task: 'send-mail', status: 'delayed', attempt: 1, target: { task: 'send-mail', id: 'mail-b' } },
      ]),
    );
    expect(snapshot.durable.childrenTotal).toBe(2);
    const res = await action('/durable/send-mail/children/mail-a/terminate');
    expect(res.status).toBe(200);
    expect((await durable.children()).map((c) => c.id)).toEqual(['mail-b']);
    const again = await action('/durable/send-mail/children/mail-a/terminate');
    expect(again.status).toBe(404);
    expect((await again.json()).message).toContain('mail-a');
  });

  it.runIf(chromiumAvailable)(
    'shows the durable children in the page, and its Terminate button removes one',
    async () => {
      const durable = app.get(DurableSupervisor);
      await durable.startChild('send-mail', { to: 'c' }, { id: 'mail-c' });
      const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
      try {
        const page = await browser.newPage();
        page.on('dialog', (dialog) => void dialog.accept());
        await page.goto(base);
        const row = page.locator('tr[data-durable-child="mail-c"]');
        await row.waitFor({ timeout: 10_000 });
        expect(await row.textContent()).toContain('send-mail');
        await page.getByRole('button', { name: 'Terminate durable mail-c' }).click();
        await expect
          .poll(async () => (await durable.children()).map((c) => c.id), { timeout: 10_000 })
          .not.toContain('mail-c');
        await row.waitFor({ state: 'detached', timeout: 10_000 });
      } finally {
        await browser.close();
      }
    },
  );

  it.runIf(chromiumAvailable)(
    'terminates from the page a child whose id is longer than the page shows and holds bidi characters',
    async () => {
      const durable = app.get(DurableSupervisor);
      // 300 characters, a right-to-left override in it: the page shows it cut at 200 with U+FFFD in its place.
      const id = `long-\u202E${'x'.repeat(294)}`;
      expect(id).toHaveLength(300);
      await durable.startChild('send-mail', { to: 'd' }, { id });
      const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
      try {
        const page = await browser.newPage();
        page.on('dialog', (dialog) => void dialog.accept());
        await page.goto(base);
        const row = page.locator('#durable tr', { hasText: 'long-\uFFFDxxx' });
        await row.waitFor({ timeout: 10_000 });
        await row.getByRole('button', { name: /^Terminate durable/ }).click();
        await expect
          .poll(async () => (await durable.children()).map((c) => c.id), { timeout: 10_000 })
          .not.toContain(id);
        await row.waitFor({ state: 'detached', timeout: 10_000 });
      } finally {
        await browser.close();
      }
    },
  );
});
