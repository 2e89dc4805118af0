import type { INestApplication } from '@nestjs/common';
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { bootSample, testConfig } from '../fixtures/sample-app.js';
import { HTTP_ADAPTERS, type HttpAdapterName } from '../e2e/utils/bootstrap-app.js';

/**
 * The sample app's DashboardGuard (what users copy) against what a browser and a proxy really send. Requests go out
 * with node:http so that `Host` can be set (fetch cannot).
 */
const TOKEN = 'guard-test-token';

async function listen(app: INestApplication): Promise<number> {
  await app.listen(0, '127.0.0.1');
  return (app.getHttpServer().address() as { port: number }).port;
}

function get(
  port: number,
  headers: Record<string, string> = {},
  path = '/_concurrency/snapshot',
): Promise<{ status: number; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path, headers: { host: `127.0.0.1:${port}`, ...headers } },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe.each(HTTP_ADAPTERS)(
  'the sample DashboardGuard without a token: this machine only (%s)',
  (adapter: HttpAdapterName) => {
    let app: INestApplication;
    let port: number;
    beforeAll(async () => {
      app = await bootSample(adapter, testConfig({ dashboardToken: undefined }));
      port = await listen(app);
    });
    afterAll(async () => {
      await app?.close();
    });

    it('lets a loopback request with a loopback Host in', async () => {
      expect((await get(port)).status).toBe(200);
      expect((await get(port, { host: `localhost:${port}` })).status).toBe(200);
    });

    it('refuses a Host that is not loopback (a DNS name rebound to 127.0.0.1)', async () => {
      expect((await get(port, { host: 'rebind.attacker.example' })).status).toBe(403);
      expect((await get(port, { host: `rebind.attacker.example:${port}` })).status).toBe(403);
    });

    it('refuses a request with forwarding headers (a reverse proxy on this machine)', async () => {
      for (const header of ['x-forwarded-for', 'forwarded', 'x-real-ip', 'x-forwarded-host']) {
        expect((await get(port, { [header]: header === 'forwarded' ? 'for=203.0.113.9' : '203.0.113.9' })).status).toBe(
          403,
        );
      }
    });
  },
);

describe.each(HTTP_ADAPTERS)('the sample DashboardGuard with a token (%s)', (adapter: HttpAdapterName) => {
  let app: INestApplication;
  let port: number;
  beforeAll(async () => {
    app = await bootSample(adapter, testConfig({ dashboardToken: TOKEN }));
    port = await listen(app);
  });
  afterAll(async () => {
    await app?.close();
  });

  it('answers 401 with a Basic challenge, so a browser asks for the token', async () => {
    const res = await get(port, {}, '/_concurrency');
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^Basic realm="[^"]+"/);
  });

  it('takes the bearer scheme in any case', async () => {
    for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
      expect((await get(port, { authorization: `${scheme} ${TOKEN}` })).status).toBe(200);
    }
    expect((await get(port, { authorization: 'Bearer wrong' })).status).toBe(401);
  });

  it('takes the token as the password of Basic credentials (any user name)', async () => {
    const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    expect((await get(port, { authorization: basic('ops', TOKEN) })).status).toBe(200);
    expect((await get(port, { authorization: basic('ops', 'wrong') })).status).toBe(401);
    expect((await get(port, { authorization: basic(TOKEN, '') })).status).toBe(401);
  });
});

describe('the guard recipe in docs/observability.md', () => {
  it("is the sample app's guard, verbatim from its request type to its end", () => {
    const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
    const guard = read('sample-app/config/dashboard.guard.ts');
    const body = guard.slice(guard.indexOf('type DashboardRequest'));
    expect(body.length).toBeGreaterThan(1000);
    expect(read('docs/observability.md')).toContain(body);
  });
});
