import { type INestApplication, Module } from '@nestjs/common';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConcurrencyModule, Interval } from 'nestjs-concurrency';
import { type Browser, chromium } from 'playwright-core';
import { bootSample, testConfig } from '../fixtures/sample-app.js';
import { bootstrapApp, HTTP_ADAPTERS, type HttpAdapterName } from '../e2e/utils/bootstrap-app.js';

/**
 * The dashboard in a real browser: Debian's chromium, driven by playwright-core (no browser download). Without
 * /usr/bin/chromium the suite skips with a reason, unless REQUIRE_CHROMIUM=1 (set by .ci/run, which installs it).
 * DASHBOARD_SCREENSHOT=1 also writes docs/dashboard.png (the README's screenshot).
 */
const CHROMIUM = '/usr/bin/chromium';
const chromiumAvailable = (() => {
  if (existsSync(CHROMIUM)) return true;
  if (process.env.REQUIRE_CHROMIUM === '1')
    throw new Error(`REQUIRE_CHROMIUM=1 but ${CHROMIUM} is missing (apt-get install -y chromium).`);
  console.warn(`Skipping the dashboard browser tests: ${CHROMIUM} is missing (apt-get install -y chromium).`);
  return false;
})();

// The flags this machine's closed network needs (no background connections, no component updates).
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const TOKEN = 'dashboard-test-token';
const AUTH = { authorization: `Bearer ${TOKEN}` };

async function listen(app: INestApplication): Promise<string> {
  await app.listen(0, '127.0.0.1');
  const address = app.getHttpServer().address() as { port: number };
  return `http://127.0.0.1:${address.port}`;
}

/** Opens the dashboard; every request the page makes is recorded. */
async function open(browser: Browser, url: string, headers: Record<string, string> = AUTH) {
  const context = await browser.newContext({ extraHTTPHeaders: headers, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const requests: string[] = [];
  page.on('request', (request) => requests.push(request.url()));
  page.on('dialog', (dialog) => void dialog.accept());
  await page.goto(url);
  return { page, requests, close: () => context.close() };
}

let browser: Browser;
beforeAll(async () => {
  if (chromiumAvailable) browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});
afterAll(async () => {
  await browser?.close();
});

describe.runIf(chromiumAvailable).each(HTTP_ADAPTERS)(
  'dashboard of the sample app (%s)',
  (adapter: HttpAdapterName) => {
    let app: INestApplication;
    let base: string;

    beforeAll(async () => {
      // Slow emails: a newsletter send stays live long enough to be seen.
      app = await bootSample(adapter, testConfig({ dashboardToken: TOKEN, mailerDelayMs: 400 }));
      base = await listen(app);
    });
    afterAll(async () => {
      await app?.close();
    });

    it('loads with no request to a host other than loopback, and lists the jobs and supervisors', async () => {
      const { page, requests, close } = await open(browser, `${base}/_concurrency`);
      try {
        await page.getByRole('status').filter({ hasText: 'live' }).waitFor({ timeout: 10_000 });
        await page.locator('tr[data-job="nightly-report"]').waitFor();
        await page.locator('tr[data-job="refresh-temperatures"]').waitFor();
        for (const name of ['default', 'jobs', 'emails']) {
          await page.locator('#supervisors h3', { hasText: name }).first().waitFor();
        }
        expect(requests.length).toBeGreaterThan(0);
        for (const url of requests) expect(new URL(url).hostname).toBe('127.0.0.1');
        if (adapter === 'express' && process.env.DASHBOARD_SCREENSHOT === '1') {
          // Something to see: a send in progress, a job run, and a few seconds of cache reads for the chart.
          await fetch(`${base}/newsletters/7/send`, { method: 'POST' });
          await page.getByRole('button', { name: 'Run nightly-report now' }).click();
          const cities = ['paris', 'lisbon', 'oslo', 'rome', 'vienna', 'berlin'];
          for (let second = 0; second < 6; second++) {
            for (let i = 0; i < 6; i++) await fetch(`${base}/weather/${cities[i <= second ? i : 0]}`);
            await new Promise((resolve) => setTimeout(resolve, 1000));
          }
          await page.locator('#supervisors td', { hasText: 'newsletter-7' }).waitFor();
          // Wide enough that the jobs table needs no horizontal scroll (its actions column is sticky).
          await page.setViewportSize({ width: 1440, height: 900 });
          await page.screenshot({
            path: fileURLToPath(new URL('../../docs/dashboard.png', import.meta.url)),
            fullPage: true,
          });
        }
      } finally {
        await close();
      }
    });

    it('shows a task started by an HTTP call without a reload, with a Terminate button that stops it', async () => {
      const { page, close } = await open(browser, `${base}/_concurrency`);
      try {
        await page.getByRole('status').filter({ hasText: 'live' }).waitFor({ timeout: 10_000 });
        const res = await fetch(`${base}/newsletters/42/send`, { method: 'POST' });
        expect(res.status).toBe(202);
        const row = page.locator('tr', { has: page.locator('td', { hasText: 'newsletter-42' }) });
        await row.waitFor({ timeout: 10_000 });
        await row.getByRole('button', { name: /^Terminate / }).click();
        await row.waitFor({ state: 'detached', timeout: 10_000 });
      } finally {
        await close();
      }
    });

    it('runs a job from its Run button: the run count goes up', async () => {
      const { page, close } = await open(browser, `${base}/_concurrency`);
      try {
        const runs = page.locator('tr[data-job="nightly-report"] td[data-field="runs"]');
        await runs.waitFor({ timeout: 10_000 });
        const before = Number(await runs.textContent());
        await page.getByRole('button', { name: 'Run nightly-report now' }).click();
        await expect.poll(async () => Number(await runs.textContent()), { timeout: 10_000 }).toBe(before + 1);
      } finally {
        await close();
      }
    });

    it("logs a person in from the browser's own prompt (the token as password): the page and its feed go live", async () => {
      const context = await browser.newContext({ httpCredentials: { username: 'ops', password: TOKEN } });
      try {
        const page = await context.newPage();
        const response = await page.goto(`${base}/_concurrency`);
        expect(response!.status()).toBe(200);
        await page.getByRole('status').filter({ hasText: 'live' }).waitFor({ timeout: 10_000 });
        await page.locator('tr[data-job="nightly-report"]').waitFor();
      } finally {
        await context.close();
      }
    });

    it('answers 401 without the guard credentials, on the page, the data and the actions', async () => {
      expect((await fetch(`${base}/_concurrency`)).status).toBe(401);
      expect((await fetch(`${base}/_concurrency/snapshot`)).status).toBe(401);
      expect((await fetch(`${base}/_concurrency/events`)).status).toBe(401);
      const action = await fetch(`${base}/_concurrency/jobs/nightly-report/run`, {
        method: 'POST',
        headers: { 'x-concurrency-dashboard': '1', authorization: 'Bearer wrong' },
      });
      expect(action.status).toBe(401);
      expect((await fetch(`${base}/_concurrency/snapshot`, { headers: AUTH })).status).toBe(200);
    });

    it('refuses an action without the custom header (what a cross-site form would send)', async () => {
      const res = await fetch(`${base}/_concurrency/jobs/nightly-report/pause`, {
        method: 'POST',
        headers: { ...AUTH, 'content-type': 'application/x-www-form-urlencoded' },
        body: 'a=1',
      });
      expect(res.status).toBe(403);
      const snapshot = await (await fetch(`${base}/_concurrency/snapshot`, { headers: AUTH })).json();
      expect(snapshot.jobs.find((j: { name: string }) => j.name === 'nightly-report').paused).toBe(false);
    });
  },
);

describe.runIf(chromiumAvailable).each(HTTP_ADAPTERS)('a read-only dashboard (%s)', (adapter: HttpAdapterName) => {
  class Jobs {
    @Interval(3_600_000, { name: 'hourly' })
    hourly() {}
  }

  @Module({
    imports: [ConcurrencyModule.forRoot({ dashboard: { path: 'ops/board', guard: false, readOnly: true } })],
    providers: [Jobs],
  })
  class ReadOnlyApp {}

  let app: INestApplication;
  let base: string;
  beforeAll(async () => {
    app = await bootstrapApp(adapter, ReadOnlyApp);
    base = await listen(app);
  });
  afterAll(async () => {
    await app?.close();
  });

  it('shows no action button, and refuses actions with 403', async () => {
    const { page, close } = await open(browser, `${base}/ops/board`, {});
    try {
      await page.locator('tr[data-job="hourly"]').waitFor({ timeout: 10_000 });
      expect(await page.getByRole('button').count()).toBe(0);
      expect(await page.locator('#mode').textContent()).toBe('read-only');
    } finally {
      await close();
    }
    for (const action of ['run', 'pause', 'resume']) {
      const res = await fetch(`${base}/ops/board/jobs/hourly/${action}`, {
        method: 'POST',
        headers: { 'x-concurrency-dashboard': '1' },
      });
      expect(res.status).toBe(403);
    }
    const snapshot = await (await fetch(`${base}/ops/board/snapshot`)).json();
    expect(snapshot.jobs[0]).toMatchObject({ name: 'hourly', runs: 0, paused: false });
  });
});
