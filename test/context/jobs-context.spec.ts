import { AsyncLocalStorage } from 'node:async_hooks';
import { type INestApplication, Injectable } from '@nestjs/common';
import { Interval, JobRegistry } from 'nestjs-concurrency';
import { bootJobs } from '../scheduling/utils/boot.js';

/** Scheduled runs belong to no request: they see the context the application booted in, whoever re-armed them. */
describe('async context of scheduled jobs', () => {
  const als = new AsyncLocalStorage<string>();
  const seen: string[] = [];
  let app: INestApplication;

  @Injectable()
  class Reports {
    @Interval(30, { name: 'reports' })
    run() {
      seen.push(`${als.getStore()}`);
    }
  }

  beforeEach(async () => {
    seen.length = 0;
    app = await als.run('boot', () => bootJobs([Reports]));
  });
  afterEach(async () => {
    await app.close();
  });

  it("a run after pause()/resume() from a request sees the boot context, not the request's", async () => {
    const registry = app.get(JobRegistry);
    als.run('request', () => {
      registry.pause('reports');
      seen.length = 0;
      registry.resume('reports');
    });
    await vi.waitFor(() => expect(seen.length).toBeGreaterThanOrEqual(2), { timeout: 5000, interval: 20 });
    expect(new Set(seen)).toEqual(new Set(['boot']));
  });

  it("trigger() runs in the caller's context (a run the caller waits for, as a child of its span)", async () => {
    const registry = app.get(JobRegistry);
    registry.pause('reports');
    seen.length = 0;
    await als.run('caller', () => registry.trigger('reports'));
    expect(seen).toEqual(['caller']);
  });
});
