import type { INestApplication } from '@nestjs/common';
import { getSupervisorToken, JobRegistry, type SupervisorEvent, type TaskSupervisor } from 'nestjs-concurrency';
import { ConcurrencyTester, ConcurrencyTestingModule } from 'nestjs-concurrency/testing';
import request from 'supertest';
import { NightlyReportJob } from '../../sample-app/jobs/nightly-report.job.js';
import { DocumentStoreService } from '../../sample-app/documents/document-store.service.js';
import { MailerService } from '../../sample-app/newsletters/mailer.service.js';
import { WeatherUpstreamService } from '../../sample-app/weather/weather-upstream.service.js';
import { WeatherService } from '../../sample-app/weather/weather.service.js';
import { bootSample, testConfig } from '../fixtures/sample-app.js';
import { HTTP_ADAPTERS } from './utils/bootstrap-app.js';

/** Polls `check` until it holds; generous deadline, so a loaded machine does not fail the test. */
async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.each(HTTP_ADAPTERS)('sample app (%s)', (adapter) => {
  let app: INestApplication;
  let http: ReturnType<typeof request>;
  let tester: ConcurrencyTester;

  beforeAll(async () => {
    // The testing kit: idle() awaits the background work, and the jobs run on its clock (advance), not on timers.
    app = await bootSample(adapter, testConfig(), [ConcurrencyTestingModule.forApp()]);
    http = request(app.getHttpServer());
    tester = app.get(ConcurrencyTester);
  });

  afterAll(async () => {
    await app?.close();
  });

  it('answers 200 on GET /health', async () => {
    const res = await http.get('/health').expect(200);
    expect(res.body).toMatchObject({ status: 'ok', details: { concurrency: { status: 'up' } } });
  });

  describe('fire and forget: newsletters and tasks', () => {
    it('accepts a send at once with a task id, shows it in /tasks, and sends every email', async () => {
      const mailer = app.get(MailerService);
      const before = mailer.sent;
      const res = await http.post('/newsletters/3/send').expect(202);
      expect(res.body).toMatchObject({ supervisor: 'emails', recipients: 20, taskId: expect.any(String) });
      const tasks = await http.get('/tasks').expect(200);
      expect(tasks.body).toContainEqual(
        expect.objectContaining({ id: res.body.taskId, supervisor: 'emails', name: 'newsletter-3' }),
      );
      await tester.idle();
      expect(mailer.sent - before).toBe(20);
      expect((await http.get('/tasks')).body.map((t: { id: string }) => t.id)).not.toContain(res.body.taskId);
    });

    it('restarts a failed send (transient) and resumes after the last email that went out', async () => {
      const mailer = app.get(MailerService);
      const events: SupervisorEvent[] = [];
      const subscription = app
        .get<TaskSupervisor>(getSupervisorToken('emails'))
        .events.subscribe((e) => events.push(e));
      const send = mailer.send.bind(mailer);
      const recipients: string[] = [];
      let calls = 0;
      const flaky = vi.spyOn(mailer, 'send').mockImplementation(async (to, subject, signal) => {
        if (++calls === 5) throw new Error('simulated outage');
        await send(to, subject, signal);
        recipients.push(to);
      });
      try {
        tester.failures(); // only this test's failures from here on
        const { body } = await http.post('/newsletters/5/send').expect(202);
        await tester.idle();
        expect(events.filter((e) => e.childId === body.taskId).map((e) => e.type)).toEqual(
          expect.arrayContaining(['failed', 'restarted', 'completed']),
        );
        expect(tester.failures()).toEqual([
          { kind: 'task', name: 'newsletter-5', error: new Error('simulated outage') },
        ]);
        expect(recipients).toHaveLength(20);
        expect(new Set(recipients).size).toBe(20);
      } finally {
        flaky.mockRestore();
        subscription.unsubscribe();
      }
    });

    it('terminates a running task with DELETE /tasks/:id', async () => {
      const mailer = app.get(MailerService);
      const slow = vi
        .spyOn(mailer, 'send')
        .mockImplementation(
          (_to, _subject, signal) =>
            new Promise<void>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
        );
      try {
        const { body } = await http.post('/newsletters/4/send').expect(202);
        await eventually(() => slow.mock.calls.length > 0);
        await http
          .delete(`/tasks/${body.taskId}`)
          .expect(200, { id: body.taskId, supervisor: 'emails', terminated: true });
        const tasks = await http.get('/tasks').expect(200);
        expect(tasks.body.map((t: { id: string }) => t.id)).not.toContain(body.taskId);
      } finally {
        slow.mockRestore();
      }
    });

    it('answers 404 for an unknown task and 400 naming the field for a bad newsletter id', async () => {
      const missing = await http.delete('/tasks/emails-999999').expect(404);
      expect(missing.body.message).toContain('emails-999999');
      const bad = await http.post('/newsletters/abc/send').expect(400);
      expect(bad.body.message.join(' ')).toMatch(/\bid\b/);
    });
  });

  describe('fan-out: documents', () => {
    it('uploads a batch and answers one outcome per document, failures included', async () => {
      const docs = [
        { name: 'a.txt', content: 'alpha' },
        { name: 'fail-b.txt', content: 'beta' },
        { name: 'c.txt', content: 'gamma' },
      ];
      tester.failures(); // only this test's failures from here on
      const res = await http.post('/documents/upload').send(docs).expect(200);
      expect(res.body.uploaded).toBe(2);
      expect(res.body.failed).toBe(1);
      // the kit saw the item fail inside settle(), which answers it as an outcome
      expect(tester.failures()).toEqual([
        {
          kind: 'fan-out',
          name: expect.stringMatching(/^settle-\d+:1$/),
          error: new Error('store refused "fail-b.txt"'),
        },
      ]);
      expect(res.body.results).toEqual([
        { name: 'a.txt', status: 'uploaded', bytes: 5 },
        { name: 'fail-b.txt', status: 'failed', error: 'store refused "fail-b.txt"' },
        { name: 'c.txt', status: 'uploaded', bytes: 5 },
      ]);
      expect(app.get(DocumentStoreService).has('c.txt')).toBe(true);
    });

    it('rejects a bad item with 400 naming the field, and a batch over the limit with 413', async () => {
      const bad = await http
        .post('/documents/upload')
        .send([{ name: 'ok.txt', content: 'x' }, { name: 'x.txt' }])
        .expect(400);
      expect(JSON.stringify(bad.body.message)).toMatch(/content/);
      await http.post('/documents/upload').send({ name: 'not-an-array' }).expect(400);
      // Over the limit is 413 even when an item is also invalid: the size is checked before the items.
      const batch = [{ name: 'bad' }, ...Array.from({ length: 100 }, (_, i) => ({ name: `d${i}.txt`, content: 'x' }))];
      const big = await http.post('/documents/upload').send(batch).expect(413);
      expect(big.body.message).toMatch(/at most 100/);
    });

    it('refuses a deeply nested body with 400, not a 500 from a stack overflow', async () => {
      // About 1,500 nested arrays: a 3 KB body that overflowed class-transformer's recursion.
      const deep = '['.repeat(1500) + ']'.repeat(1500);
      const res = await http
        .post('/documents/upload')
        .set('content-type', 'application/json')
        .send(`[{"name":"a.txt","content":"x","extra":${deep}}]`);
      expect(res.status).toBe(400);
      const shallow = await http
        .post('/documents/upload')
        .set('content-type', 'application/json')
        .send(`[${'['.repeat(40)}${']'.repeat(40)}]`);
      expect(shallow.status).toBe(400);
    });

    it.each(['constructor', '__proto__', 'prototype', 'admin'])(
      'refuses an extra "%s" property with 400, like any other non-whitelisted one',
      async (key) => {
        const res = await http
          .post('/documents/upload')
          .set('content-type', 'application/json')
          .send(`[{"name":"polluted-${key}.txt","content":"x","${key}":{"polluted":true}}]`);
        expect(res.status).toBe(400);
        // Fastify's JSON parser refuses __proto__ and constructor itself, with its own message.
        if (adapter === 'express') expect(JSON.stringify(res.body)).toContain(key);
        expect(app.get(DocumentStoreService).has(`polluted-${key}.txt`)).toBe(false);
      },
    );

    it('streams an export as NDJSON, one line per document', async () => {
      const res = await http
        .get('/documents/export?count=12')
        .buffer(true)
        .parse((r, cb) => {
          let text = '';
          r.on('data', (c: Buffer) => (text += c.toString()));
          r.on('end', () => cb(null, text));
        });
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/application\/x-ndjson/);
      const lines = (res.body as string)
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(lines).toHaveLength(12);
      expect(new Set(lines.map((l: { index: number }) => l.index)).size).toBe(12);
      expect(lines.every((l: { status: string }) => l.status === 'uploaded')).toBe(true);
      await http.get('/documents/export?count=0').expect(400);
    });
  });

  describe('caching: weather', () => {
    it('runs the handler once for 200 concurrent cold requests, then serves HITs', async () => {
      // The handler calls WeatherService.current: counting it (not the upstream, which getOrStore also coalesces)
      // shows the response cache's own single flight.
      const current = vi.spyOn(app.get(WeatherService), 'current');
      try {
        const responses = await Promise.all(Array.from({ length: 200 }, () => http.get('/weather/rome')));
        expect(responses.every((r) => r.status === 200)).toBe(true);
        expect(current.mock.calls.filter(([city]) => city === 'rome')).toHaveLength(1);
        expect(new Set(responses.map((r) => JSON.stringify(r.body))).size).toBe(1);
        const hit = await http.get('/weather/rome').expect(200);
        expect(hit.headers['x-cache']).toBe('HIT');
        expect(current.mock.calls.filter(([city]) => city === 'rome')).toHaveLength(1);
      } finally {
        current.mockRestore();
      }
    });

    it('evicts the city on PUT, so the next GET shows the correction', async () => {
      await http.get('/weather/lisbon').expect(200);
      expect((await http.get('/weather/lisbon')).headers['x-cache']).toBe('HIT');
      await http
        .put('/weather/lisbon')
        .send({ temperatureC: 21.5 })
        .expect(200, { city: 'lisbon', temperatureC: 21.5 });
      const after = await http.get('/weather/lisbon').expect(200);
      expect(after.headers['x-cache']).toBe('MISS');
      expect(after.body.temperatureC).toBe(21.5);
    });

    it('validates the city and the correction', async () => {
      const badCity = await http.get('/weather/R0ME').expect(400);
      expect(JSON.stringify(badCity.body.message)).toMatch(/city/);
      const badBody = await http.put('/weather/rome').send({ temperatureC: 'hot' }).expect(400);
      expect(JSON.stringify(badBody.body.message)).toMatch(/temperatureC/);
    });

    it('reports cache counters on GET /cache/stats', async () => {
      const { body } = await http.get('/cache/stats').expect(200);
      expect(body).toEqual({
        hits: expect.any(Number),
        misses: expect.any(Number),
        stale: expect.any(Number),
        coalesced: expect.any(Number),
        errors: 0,
        refreshErrors: 0,
        // in memory (no REDIS_URL): singleFlight 'instance', nothing to follow or fall back from
        clusterFollowers: 0,
        clusterFallbacks: 0,
        // per @Cached provider method (the sample app caches routes only)
        methods: {},
      });
      expect(body.hits).toBeGreaterThan(0);
    });
  });

  describe('scheduling: jobs', () => {
    it('lists both jobs', async () => {
      const { body } = await http.get('/jobs').expect(200);
      expect(body.map((j: { name: string }) => j.name).sort()).toEqual(['nightly-report', 'refresh-temperatures']);
      expect(body.find((j: { name: string }) => j.name === 'nightly-report')).toMatchObject({
        kind: 'cron',
        schedule: '0 0 3 * * *',
      });
    });

    it('runs a job on POST /jobs/:name/run and answers when it ended', async () => {
      const before = (await http.get('/jobs').expect(200)).body.find(
        (j: { name: string }) => j.name === 'nightly-report',
      );
      const { body } = await http.post('/jobs/nightly-report/run').expect(200);
      expect(body.runs).toBe(before.runs + 1);
      expect(body.failures).toBe(0);
      expect(body.lastRunAt).not.toBeNull();
    });

    it('pauses and resumes a job', async () => {
      expect((await http.post('/jobs/refresh-temperatures/pause').expect(200)).body.paused).toBe(true);
      expect((await http.post('/jobs/refresh-temperatures/resume').expect(200)).body.paused).toBe(false);
    });

    it('refresh-temperatures warms the readings 1 s after boot: the next GET needs no upstream call', async () => {
      const fetch = vi.spyOn(app.get(WeatherUpstreamService), 'fetch');
      try {
        await tester.advance(1000); // its initialDelay
        expect(fetch.mock.calls.map(([city]) => city)).toEqual(['paris']);
        await http.get('/weather/paris').expect(200);
        expect(fetch).toHaveBeenCalledTimes(1);
      } finally {
        fetch.mockRestore();
      }
    });

    it('writes the nightly report at 03:00 UTC, once a day', async () => {
      const registry = app.get(JobRegistry);
      registry.pause('refresh-temperatures'); // every 30 s: not the subject here
      try {
        const written = app.get(NightlyReportJob).written;
        const before = written.length;
        tester.failures(); // only this test's failures from here on
        await tester.advance(24 * 60 * 60 * 1000);
        expect(written).toHaveLength(before + 1);
        expect(written.at(-1)?.at).toMatch(/T03:00:00\.000Z$/);
        expect(tester.failures()).toEqual([]);
      } finally {
        registry.resume('refresh-temperatures');
      }
    });

    it('answers 404 naming the known jobs for an unknown one', async () => {
      const { body } = await http.post('/jobs/nope/run').expect(404);
      expect(body.message).toMatch(/nope.*nightly-report/);
      await http.post('/jobs/nope/pause').expect(404);
    });
  });
});

describe.each(HTTP_ADAPTERS)('sample app shutdown (%s)', (adapter) => {
  it('lets a running newsletter send finish when the app closes', async () => {
    const app = await bootSample(adapter, testConfig({ mailerDelayMs: 50 }));
    const mailer = app.get(MailerService);
    await request(app.getHttpServer()).post('/newsletters/9/send').expect(202);
    await eventually(() => mailer.sent > 0);
    expect(mailer.sent).toBeLessThan(20);
    await app.close();
    expect(mailer.sent).toBe(20);
  });
});
