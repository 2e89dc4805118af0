import type { INestApplication } from '@nestjs/common';
import { Injectable } from '@nestjs/common';
import { Redis } from 'ioredis';
import { Cron, Interval, type JobContext, JobRegistry, RedisJobLock } from 'nestjs-concurrency';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';
import { bootJobs } from './utils/boot.js';

/** Runs per instance, with the wall-clock time each started. */
const starts = new Map<string, number[]>();

describe.skipIf(!redisAvailable)('cluster-wide pause, resume and reschedule (real redis-server)', () => {
  let server: RedisServer;
  const clients: Redis[] = [];
  const apps: INestApplication[] = [];

  beforeEach(async () => {
    server = await RedisServer.start();
    starts.clear();
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
    for (const client of clients.splice(0)) client.disconnect();
    await server.stop();
  });

  async function boot(instance: string) {
    const client = new Redis(server.url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true });
    client.on('error', () => {});
    await client.connect();
    clients.push(client);
    @Injectable()
    class Poll {
      // No lock: every instance runs every tick, so a pause must reach each one.
      @Interval(100, { name: 'poll' })
      run() {
        const list = starts.get(instance) ?? [];
        list.push(Date.now());
        starts.set(instance, list);
      }
      @Cron('0 0 1 1 *', { name: 'yearly' })
      yearly(_ctx: JobContext) {}
    }
    const app = await bootJobs([Poll], { jobs: { lock: new RedisJobLock(client), instance } });
    apps.push(app);
    return app;
  }

  const count = (instance: string) => starts.get(instance)?.length ?? 0;

  it('a pause on one instance stops runs on the other within a second; resume starts them again', async () => {
    const a = await boot('a');
    await boot('b');
    await vi.waitFor(() => expect(count('b')).toBeGreaterThan(3), { timeout: 10_000 });
    const pausedAt = Date.now();
    a.get(JobRegistry).pause('poll');
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const late = (starts.get('b') ?? []).filter((t) => t > pausedAt + 1000);
    expect(late).toEqual([]);
    expect((starts.get('a') ?? []).filter((t) => t > pausedAt)).toEqual([]);
    expect(apps[1].get(JobRegistry).get('poll').paused).toBe(true);

    const before = count('b');
    apps[1].get(JobRegistry).resume('poll');
    await vi.waitFor(
      () => {
        expect(count('a')).toBeGreaterThan(0);
        expect(a.get(JobRegistry).get('poll').paused).toBe(false);
        expect(count('b')).toBeGreaterThan(before);
      },
      { timeout: 5000 },
    );
  }, 30_000);

  it('an instance that boots after a pause starts paused, and reschedule() reaches the others', async () => {
    const a = await boot('a');
    a.get(JobRegistry).pause('poll');
    await a.get(JobRegistry).reschedule('yearly', '0 0 2 2 *');
    // The pause is written in the background: give it a moment to land.
    await vi.waitFor(async () =>
      expect(await clients[0].hget('{nestjs-concurrency:jobs}:control:paused', 'poll')).toBe('1'),
    );
    const b = await boot('b');
    await vi.waitFor(() => expect(b.get(JobRegistry).get('poll').paused).toBe(true), { timeout: 2000 });
    await vi.waitFor(() => expect(b.get(JobRegistry).get('yearly').schedule).toBe('0 0 2 2 *'), { timeout: 2000 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(count('b')).toBe(0);

    const changedAt = Date.now();
    await b.get(JobRegistry).reschedule('poll', 300);
    await vi.waitFor(() => expect(a.get(JobRegistry).get('poll').schedule).toBe(300), { timeout: 2000 });
    expect(Date.now() - changedAt).toBeLessThan(1500);
    // Still paused: a new schedule does not resume a job.
    expect(a.get(JobRegistry).get('poll').paused).toBe(true);
  }, 30_000);

  it('keeps booting and running with Redis down; a pause applies here and reaches the others once Redis is back', async () => {
    const a = await boot('a');
    const b = await boot('b');
    await server.stop();
    a.get(JobRegistry).pause('poll');
    expect(a.get(JobRegistry).get('poll').paused).toBe(true);
    const during = count('b');
    await new Promise((resolve) => setTimeout(resolve, 600));
    expect(count('b')).toBeGreaterThan(during); // b has not heard of it: Redis is down
    await server.restart();
    await vi.waitFor(() => expect(b.get(JobRegistry).get('poll').paused).toBe(true), { timeout: 10_000 });
    expect(a.get(JobRegistry).get('poll').paused).toBe(true);
  }, 30_000);

  it('reschedule() rejects and changes nothing while Redis is paused (CLIENT PAUSE), on no instance', async () => {
    const a = await boot('a');
    const b = await boot('b');
    const admin = new Redis(server.url);
    try {
      await admin.client('PAUSE', 3000, 'ALL');
      const started = Date.now();
      await expect(a.get(JobRegistry).reschedule('poll', 5000)).rejects.toThrow(/did not answer within 1000 ms/);
      expect(Date.now() - started).toBeLessThan(2500);
      expect(a.get(JobRegistry).get('poll').schedule).toBe(100);
      await admin.client('UNPAUSE');
      await new Promise((resolve) => setTimeout(resolve, 800));
      expect(b.get(JobRegistry).get('poll').schedule).toBe(100);
    } finally {
      admin.disconnect();
    }
  }, 30_000);

  it('carries hostile job names (prototype keys, spaces, braces, unicode) like any other', async () => {
    const client = new Redis(server.url, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
    client.on('error', () => {});
    clients.push(client);
    const names = ['__proto__', 'constructor', 'a b:{x}@running', 'é\u202E😀'];
    const make = (instance: string) => {
      @Injectable()
      class Odd {
        @Interval(100, { name: names[0] })
        a() {
          starts.set(`${instance}:0`, [...(starts.get(`${instance}:0`) ?? []), Date.now()]);
        }
        @Interval(100, { name: names[1] })
        b() {}
        @Interval(100, { name: names[2], lock: true })
        c() {}
        @Interval(100, { name: names[3] })
        d() {}
      }
      return bootJobs([Odd], { jobs: { lock: new RedisJobLock(client), instance } });
    };
    const a = await make('a');
    const b = await make('b');
    apps.push(a, b);
    for (const name of names) a.get(JobRegistry).pause(name);
    await vi.waitFor(() => expect(names.map((n) => b.get(JobRegistry).get(n).paused)).toEqual(names.map(() => true)), {
      timeout: 2000,
    });
    await b.get(JobRegistry).reschedule(names[3], 700);
    await vi.waitFor(() => expect(a.get(JobRegistry).get(names[3]).schedule).toBe(700), { timeout: 2000 });
    const runs = await a.get(JobRegistry).history(names[2]);
    expect(runs.length).toBeGreaterThanOrEqual(0);
    for (const run of await b.get(JobRegistry).history(names[0])) expect(['a', 'b']).toContain(run.instance);
  }, 30_000);

  it('RedisJobLock refuses a late pause state of an older call, and starts a lost version count at a random number', async () => {
    const client = new Redis(server.url, { maxRetriesPerRequest: 1 });
    clients.push(client);
    const lock = new RedisJobLock(client);
    expect(await lock.setControl('poll', { paused: false, pausedAt: 2000 })).toBe(true);
    expect(await lock.setControl('poll', { paused: true, pausedAt: 1000, late: true })).toBe(false);
    expect((await lock.control(null))!.jobs.get('poll')).toEqual({ paused: false });
    expect(await lock.setControl('poll', { paused: true, pausedAt: 3000, late: true })).toBe(true);
    const before = (await lock.control(null))!;
    expect(before.jobs.get('poll')).toEqual({ paused: true });
    // Redis loses its data: the next change must not get a version an instance already knows (it would read as
    // "nothing changed").
    await client.flushall();
    await lock.setControl('poll', { paused: false, pausedAt: 4000 });
    await lock.setControl('poll', { paused: true, pausedAt: 5000 });
    expect(await lock.control(before.version)).not.toBeNull();
    expect((await lock.control(null))!.version).toBeGreaterThan(1000);
  });
});
