import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';
import { HTTP_ADAPTERS, type HttpAdapterName } from '../e2e/utils/bootstrap-app.js';
import { compileSampleApp, SampleProcess } from './fixtures/sample-process.js';

/**
 * An open dashboard tab must not keep the application from shutting down: the sample app in its own process, a real
 * Chromium tab on its dashboard, SIGTERM. Skips without /usr/bin/chromium (as dashboard.browser.spec.ts).
 */
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
/** The sample app's longest supervisor shutdownTimeout (emails), with nothing running: the drain is immediate. */
const SHUTDOWN_TIMEOUT = 10_000;
/** Generous: two cores shared by several test runs. */
const MARGIN = 5_000;

let browser: Browser;
beforeAll(async () => {
  if (!chromiumAvailable) return;
  compileSampleApp();
  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}, 180_000);
afterAll(async () => {
  await browser?.close();
});

describe.runIf(chromiumAvailable).each(HTTP_ADAPTERS)(
  'an open dashboard tab at shutdown (%s)',
  (adapter: HttpAdapterName) => {
    let app: SampleProcess | undefined;
    afterEach(() => app?.kill('SIGKILL'));

    it('does not keep the process from exiting on SIGTERM', async () => {
      app = await SampleProcess.start({ HTTP_ADAPTER: adapter });
      const context = await browser.newContext();
      try {
        const page = await context.newPage();
        await page.goto(`${app.url}/_concurrency`);
        await page.getByRole('status').filter({ hasText: 'live' }).waitFor({ timeout: 15_000 });
        const signalledAt = Date.now();
        app.kill('SIGTERM');
        const exited = await Promise.race([
          app.exited.then(() => Date.now() - signalledAt),
          new Promise<null>((resolve) => setTimeout(() => resolve(null), SHUTDOWN_TIMEOUT + MARGIN)),
        ]);
        expect(
          exited,
          `still running ${SHUTDOWN_TIMEOUT + MARGIN} ms after SIGTERM:\n${app.output.join('').slice(-2000)}`,
        ).not.toBeNull();
      } finally {
        await context.close();
      }
    }, 90_000);
  },
);
