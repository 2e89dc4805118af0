import { type INestApplication, Injectable, Module } from '@nestjs/common';
import { existsSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { ConcurrencyModule, getSupervisorToken, Interval, JobRegistry, type TaskSupervisor } from 'nestjs-concurrency';
import { type Browser, chromium } from 'playwright-core';
import { DashboardService } from '../../lib/observability/dashboard/dashboard.service.js';
import { bootstrapApp, HTTP_ADAPTERS, type HttpAdapterName } from '../e2e/utils/bootstrap-app.js';

/** The page itself in Chromium (as dashboard.browser.spec.ts, which covers the sample app): hostile names. */
const CHROMIUM = '/usr/bin/chromium';
const chromiumAvailable = existsSync(CHROMIUM) || process.env.REQUIRE_CHROMIUM === '1';
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
const SPOOFED = 'report-\u202Etxt.exe';
let spoofedFails = false;

@Injectable()
class Jobs {
  @Interval(3_600_000, { name: SPOOFED })
  spoofed(): void {
    if (spoofedFails) throw new Error('upstream down');
  }
}

@Module({
  imports: [ConcurrencyModule.forRoot({ dashboard: { guard: false } })],
  providers: [Jobs],
})
class AppModule {}

let browser: Browser;
beforeAll(async () => {
  if (chromiumAvailable) browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
});
afterAll(async () => {
  await browser?.close();
});

describe.runIf(chromiumAvailable).each(HTTP_ADAPTERS)('the dashboard page (%s)', (adapter: HttpAdapterName) => {
  let app: INestApplication;
  let base: string;
  const abort = new AbortController();

  beforeAll(async () => {
    app = await bootstrapApp(adapter, AppModule);
    await app.listen(0, '127.0.0.1');
    base = `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}`;
  });
  afterAll(async () => {
    abort.abort();
    await app?.close();
  });

  async function open(path = '/_concurrency') {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    page.on('dialog', (dialog) => void dialog.accept());
    await page.goto(`${base}${path}`);
    return { page, close: () => context.close() };
  }

  it('keeps the Terminate button in view beside a 100,000-character name, the name cut with an ellipsis', async () => {
    const supervisor = app.get<TaskSupervisor>(getSupervisorToken('default'));
    const child = supervisor.startChild(
      ({ signal }) => new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve())),
      { name: `long-${'n'.repeat(100_000)}` },
    );
    const { page, close } = await open();
    try {
      const button = page.getByRole('button', { name: `Terminate ${child.id}` });
      await button.waitFor({ timeout: 10_000 });
      const box = (await button.boundingBox())!;
      expect(box.x + box.width).toBeLessThanOrEqual(1280);
      const name = page.locator(`tr[data-child="${child.id}"] .clip`);
      expect((await name.getAttribute('title'))!.startsWith('long-nnn')).toBe(true);
    } finally {
      await close();
      await supervisor.terminateChild(child.id);
    }
  });

  it('shows a name with a bidi override with the override neutralised, and its actions still reach it', async () => {
    const { page, close } = await open();
    try {
      const row = page.locator('tr[data-job]').first();
      await row.waitFor({ timeout: 10_000 });
      const text = (await row.locator('td').first().textContent())!;
      expect(text).not.toContain('\u202E');
      expect(text).toContain('report-\uFFFDtxt.exe');
      await page.getByRole('button', { name: /^Run .* now$/ }).click();
      await expect
        .poll(async () => Number(await row.locator('td[data-field="runs"]').textContent()), { timeout: 10_000 })
        .toBe(1);
    } finally {
      await close();
    }
  });

  it("runs under a Content-Security-Policy without 'unsafe-inline': its own script by hash, an injected one not", async () => {
    const res = await fetch(`${base}/_concurrency`);
    const csp = res.headers.get('content-security-policy')!;
    await res.text();
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'/);
    const { page, close } = await open();
    try {
      // The page's own script runs (the feed goes live)...
      await page.getByRole('status').filter({ hasText: 'live' }).waitFor({ timeout: 10_000 });
      // ...an inline script that an escaping bug would let in does not.
      const ran = await page.evaluate(() => {
        const script = document.createElement('script');
        script.textContent = 'window.__injected = true';
        document.body.append(script);
        return (window as unknown as { __injected?: boolean }).__injected === true;
      });
      expect(ran).toBe(false);
    } finally {
      await close();
    }
  });

  it('goes live behind a proxy that strips a path prefix: its requests go where the page was loaded from', async () => {
    // A reverse proxy serving the app under /ops, as nginx `location /ops/ { proxy_pass http://app/; }` does.
    const { port } = new URL(base);
    const proxy: Server = createServer((req, res) => {
      if (!req.url!.startsWith('/ops/')) return void res.writeHead(404).end();
      const upstream = httpRequest(
        { host: '127.0.0.1', port, path: req.url!.slice('/ops'.length), method: req.method, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode!, answer.headers);
          answer.pipe(res);
        },
      );
      // A proxy ends the upstream request when its client goes (nginx does): an event stream left open upstream
      // would outlive the page.
      res.on('close', () => upstream.destroy());
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const proxied = `http://127.0.0.1:${(proxy.address() as { port: number }).port}`;
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const requests: string[] = [];
      page.on('request', (request) => requests.push(new URL(request.url()).pathname));
      await page.goto(`${proxied}/ops/_concurrency`);
      await page.getByRole('status').filter({ hasText: 'live' }).waitFor({ timeout: 10_000 });
      expect(requests).toContain('/ops/_concurrency/events');
      for (const path of requests) expect(path.startsWith('/ops/')).toBe(true);
    } finally {
      await context.close();
      proxy.closeAllConnections();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });

  it('says "stale" when the feed stops, instead of staying green "live"', async () => {
    const { page, close } = await open();
    const service = app.get(DashboardService);
    let resume: () => void = () => undefined;
    try {
      await page.getByRole('status').filter({ hasText: 'live' }).waitFor({ timeout: 10_000 });
      // The connection stays open, but no snapshot comes (one that hangs: the ticks after it are skipped).
      const real = service.snapshot.bind(service);
      vi.spyOn(service, 'snapshot').mockImplementation(
        () => new Promise((resolve) => (resume = () => resolve(real()))),
      );
      await page.getByRole('status').filter({ hasText: 'stale since' }).waitFor({ timeout: 15_000 });
      expect(await page.getByRole('status').getAttribute('class')).not.toContain('live');
    } finally {
      vi.restoreAllMocks();
      resume();
      await close();
    }
  });

  it('treats a counter that goes down as a reset (another instance, a restart): the hit ratio never goes negative', async () => {
    const real = await (await fetch(`${base}/_concurrency/snapshot`)).json();
    const at = (hits: number, misses: number) =>
      `data: ${JSON.stringify({ ...real, cache: { ...real.cache, hits, misses, stale: 0, coalesced: 0 } })}\n\n`;
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      let connection = 0;
      // The feed as two instances behind a load balancer would serve it: the reconnect lands on one whose
      // counters are lower.
      await page.route('**/_concurrency/events', (route) => {
        connection++;
        const body =
          connection === 1 ? `retry: 200\n\n${at(900, 100)}${at(1000, 100)}` : `${at(5, 2000)}${at(10, 2001)}`;
        return route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream' }, body });
      });
      await page.goto(`${base}/_concurrency`);
      await expect.poll(() => connection, { timeout: 10_000 }).toBeGreaterThanOrEqual(2);
      await page.locator('#cache .stat b').first().filter({ hasText: /^10$/ }).waitFor({ timeout: 10_000 });
      const summary = (await page.locator('#cache p.muted').textContent())!;
      expect(summary).not.toMatch(/-\d/);
    } finally {
      await context.close();
    }
  });

  it('labels the supervisor counts as attempts: a task restarted after a failure is one task, two attempts', async () => {
    const supervisor = app.get<TaskSupervisor>(getSupervisorToken('default'));
    let attempt = 0;
    supervisor.startChild(
      () => {
        if (++attempt === 1) throw new Error('first attempt fails');
      },
      { name: 'flaky', restart: 'transient' },
    );
    await vi.waitFor(() => expect(attempt).toBe(2));
    const { page, close } = await open();
    try {
      const heading = page.locator('#supervisors h3', { hasText: 'default' });
      await heading.waitFor({ timeout: 10_000 });
      expect(await heading.textContent()).toMatch(/attempts: \d+ started .* \d+ failed/);
    } finally {
      await close();
    }
  });

  it('keeps its buttons across updates: a click whose mouse-up comes seconds after the mouse-down still pauses', async () => {
    const { page, close } = await open();
    const jobs = app.get(JobRegistry);
    try {
      const button = page.getByRole('button', { name: /^Pause / });
      await button.waitFor({ timeout: 10_000 });
      const box = (await button.boundingBox())!;
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      await page.mouse.down();
      // At least two snapshots arrive while the button is held down.
      await new Promise((resolve) => setTimeout(resolve, 2500));
      await page.mouse.up();
      await expect.poll(() => jobs.get(SPOOFED).paused, { timeout: 10_000 }).toBe(true);
    } finally {
      if (jobs.get(SPOOFED).paused) jobs.resume(SPOOFED);
      await close();
    }
  });

  it('follows the dark color scheme, and keeps the action buttons in view on a phone-sized screen', async () => {
    const context = await browser.newContext({ viewport: { width: 375, height: 740 }, colorScheme: 'dark' });
    try {
      const page = await context.newPage();
      await page.goto(`${base}/_concurrency`);
      const run = page.getByRole('button', { name: /^Run .* now$/ });
      await run.waitFor({ timeout: 10_000 });
      const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      const [r, g, b] = background.match(/\d+/g)!.map(Number);
      expect(r + g + b).toBeLessThan(150);
      const box = (await run.boundingBox())!;
      expect(box.x).toBeGreaterThanOrEqual(0);
      expect(box.x + box.width).toBeLessThanOrEqual(375);
    } finally {
      await context.close();
    }
  });

  it('filters children and jobs by the text typed in its search box, across updates', async () => {
    const supervisor = app.get<TaskSupervisor>(getSupervisorToken('default'));
    const wait = ({ signal }: { signal: AbortSignal }) =>
      new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
    const alpha = supervisor.startChild(wait, { name: 'alpha-task' });
    const beta = supervisor.startChild(wait, { name: 'beta-task' });
    const { page, close } = await open();
    try {
      await page.locator(`tr[data-child="${beta.id}"]`).waitFor({ timeout: 10_000 });
      await page.getByRole('searchbox').fill('ALPHA');
      // Still filtered after the next snapshots arrived.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      expect(await page.locator(`tr[data-child="${alpha.id}"]`).isVisible()).toBe(true);
      expect(await page.locator(`tr[data-child="${beta.id}"]`).isVisible()).toBe(false);
      expect(await page.locator('tr[data-job]').first().isVisible()).toBe(false);
      await page.getByRole('searchbox').fill('');
      await page.locator(`tr[data-child="${beta.id}"]`).waitFor({ state: 'visible' });
    } finally {
      await close();
      await supervisor.terminateChild(alpha.id);
      await supervisor.terminateChild(beta.id);
    }
  });

  it('shows p50/p95/p99 per job and supervisor, a past error with its time, and a chart with axes and time labels', async () => {
    const jobs = app.get(JobRegistry);
    spoofedFails = true;
    await jobs.trigger(SPOOFED).catch(() => undefined);
    spoofedFails = false;
    const failedAt = jobs.get(SPOOFED).lastErrorAt!.getTime();
    await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(failedAt));
    await jobs.trigger(SPOOFED);
    await app
      .get<TaskSupervisor>(getSupervisorToken('default'))
      .async(() => undefined)
      .await(10_000);
    const { page, close } = await open();
    try {
      const row = page.locator('tr[data-job]').first();
      const error = row.locator('[data-field="last-error"]');
      await error.waitFor({ timeout: 10_000 });
      expect(await error.textContent()).toMatch(/\d{1,2}:\d{2}:\d{2}.* · past · upstream down/);
      expect(await error.getAttribute('class')).toContain('muted');
      const duration = String.raw`\d+(\.\d)? (ms|s|min)`;
      const threeDurations = new RegExp(`^${duration} · ${duration} · ${duration}$`);
      expect(await row.locator('td[data-field="percentiles"]').textContent()).toMatch(threeDurations);
      const heading = page.locator('#supervisors h3', { hasText: 'default' });
      expect(await heading.locator('[data-field="percentiles"]').textContent()).toMatch(threeDurations);
      const labels = await page.locator('#cache svg text').allTextContents();
      expect(labels).toEqual(expect.arrayContaining(['100%', '50%', '0%']));
      const end = await page.locator('#cache svg text[data-axis="end"]').textContent();
      expect(end).toMatch(/\d{1,2}:\d{2}:\d{2}/);
    } finally {
      await close();
    }
  });

  it("keeps a child's row in its place when the child restarts (its attempt and start time change)", async () => {
    const supervisor = app.get<TaskSupervisor>(getSupervisorToken('default'));
    const untilAbort = ({ signal }: { signal: AbortSignal }) =>
      new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve()));
    let fail!: () => void;
    const failNow = new Promise<void>((resolve) => (fail = resolve));
    let attempt = 0;
    // The one that restarts is in the middle: sorted by start time or attempt, either way, it would move to an end.
    const before = supervisor.startChild(untilAbort, { name: 'order-before' });
    const middle = supervisor.startChild(
      async (context) => {
        if (++attempt === 1) {
          await failNow;
          throw new Error('restart me');
        }
        await untilAbort(context);
      },
      { name: 'order-middle', restart: 'transient' },
    );
    const after = supervisor.startChild(untilAbort, { name: 'order-after' });
    const mine = [before.id, middle.id, after.id];
    const { page, close } = await open();
    try {
      const order = async () =>
        (
          await page
            .locator('#supervisors tr[data-child]')
            .evaluateAll((rows) => rows.map((row) => row.getAttribute('data-child')))
        ).filter((id) => mine.includes(id!));
      await expect.poll(order, { timeout: 10_000 }).toEqual(mine);
      const attemptCell = page.locator(`#supervisors tr[data-child="${middle.id}"] td:nth-child(5)`);
      expect(await attemptCell.textContent()).toBe('1');
      fail();
      await expect.poll(() => attemptCell.textContent(), { timeout: 10_000 }).toBe('2');
      expect(await order()).toEqual(mine);
    } finally {
      for (const id of mine) await supervisor.terminateChild(id);
      await close();
    }
  });
});
