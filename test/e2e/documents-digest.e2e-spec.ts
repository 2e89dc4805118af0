import { createHash } from 'node:crypto';
import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { bootSample } from '../fixtures/sample-app.js';
import { HTTP_ADAPTERS } from './utils/bootstrap-app.js';

/** What the worker computes, here on the test's own thread: sha256 applied `rounds` times. */
function expectedDigest(content: string, rounds: number): string {
  let value = createHash('sha256').update(content).digest();
  for (let round = 1; round < rounds; round++) value = createHash('sha256').update(value).digest();
  return value.toString('hex');
}

describe.each(HTTP_ADAPTERS)('sample app: POST /documents/digest on worker threads (%s)', (adapter) => {
  let app: INestApplication;
  let http: ReturnType<typeof request>;

  beforeAll(async () => {
    app = await bootSample(adapter);
    http = request(app.getHttpServer());
  });

  afterAll(async () => {
    await app?.close();
  });

  it('answers the digest of every document, in input order', async () => {
    const docs = [
      { name: 'a.txt', content: 'alpha' },
      { name: 'b.txt', content: 'beta' },
      { name: 'c.txt', content: '' },
    ];
    const res = await http.post('/documents/digest?rounds=1000').send(docs).expect(200);
    expect(res.body).toEqual({
      rounds: 1000,
      results: docs.map((doc) => ({ name: doc.name, digest: expectedDigest(doc.content, 1000) })),
    });
  });

  it('refuses bad rounds and bad documents with 400 naming the field', async () => {
    const zero = await http
      .post('/documents/digest?rounds=0')
      .send([{ name: 'a', content: 'x' }])
      .expect(400);
    expect(JSON.stringify(zero.body)).toContain('rounds');
    const bad = await http
      .post('/documents/digest')
      .send([{ name: 'a', content: 42 }])
      .expect(400);
    expect(JSON.stringify(bad.body)).toContain('content');
  });

  it('answers GET /health at once while a large digest keeps the worker threads busy', async () => {
    // About 5 s of CPU in all (4 documents of 500,000 rounds; at least 1 s on two idle cores): on the event loop,
    // /health would wait for it.
    const docs = Array.from({ length: 4 }, (_, i) => ({ name: `big-${i}.txt`, content: `document ${i}` }));
    let finished = false;
    const started = Date.now();
    const big = http
      .post('/documents/digest?rounds=500000')
      .send(docs)
      .expect(200)
      .then((res) => {
        finished = true;
        return res;
      });
    const latencies: number[] = [];
    while (!finished) {
      const sent = Date.now();
      await http.get('/health').expect(200);
      // Only checks answered while the digest still ran, once it surely started, count.
      if (!finished && sent - started > 300) latencies.push(Date.now() - sent);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const res = await big;
    const took = Date.now() - started;
    expect(res.body.results[3]).toEqual({ name: 'big-3.txt', digest: expectedDigest('document 3', 500_000) });
    expect(took).toBeGreaterThan(800);
    expect(latencies.length).toBeGreaterThanOrEqual(3);
    // Generous: a shared machine may stall a request now and then, but never for the length of a document's hashing.
    expect(Math.max(...latencies)).toBeLessThan(Math.min(400, took / 3));
  });
});
