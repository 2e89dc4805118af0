import { Injectable } from '@nestjs/common';
import { type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { type DurableTaskContext, DurableSupervisor, TaskHandler } from 'nestjs-concurrency';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';
import { bootDurable, type DurableApp, uniquePrefix } from '../durable/helpers.js';
import { installTracing, parentOf } from './tracing-utils.js';

const payloads: unknown[] = [];
const traceIds: (string | undefined)[] = [];

@Injectable()
class Handlers {
  @TaskHandler('report.build', { restart: 'transient', maxRestarts: 1, backoff: 10 })
  build(payload: { n: number; fail?: boolean }, ctx: DurableTaskContext) {
    payloads.push(payload);
    traceIds.push(trace.getActiveSpan()?.spanContext().traceId);
    if (payload.fail && ctx.attempt === 1) throw new Error('first attempt fails');
    return payload.n * 2;
  }
}

/**
 * A durable task started on one instance and run on another is one trace: PRODUCER `send <task>` on the starter,
 * CONSUMER `process <task>` (one per attempt) on the worker, its child, with OTel's messaging attributes. Both apps
 * run in this process on one real redis-server; the trace context travels only through Redis (the job's options).
 */
describe.skipIf(!redisAvailable)('tracing: durable tasks across two instances (real redis-server)', () => {
  let server: RedisServer;
  let otel: ReturnType<typeof installTracing>;
  let api: DurableApp;
  let worker: DurableApp;

  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => {
    await server.stop();
  });
  beforeEach(async () => {
    payloads.length = 0;
    traceIds.length = 0;
    otel = installTracing();
    const prefix = uniquePrefix();
    api = await bootDurable({ connection: server.url, prefix, workers: false }, [Handlers]);
    worker = await bootDurable({ connection: server.url, prefix }, [Handlers]);
  });
  afterEach(async () => {
    await Promise.all([api.app.close(), worker.app.close()]);
    await otel.uninstall();
  });

  it('send (PRODUCER) on the starter and process (CONSUMER) on the worker are one trace', async () => {
    const supervisor = api.app.get(DurableSupervisor);
    const task = await otel.tracer.startActiveSpan('request', async (request: Span) => {
      const started = await supervisor.async<{ n: number }, number>('report.build', { n: 21 });
      request.end();
      return started;
    });
    expect(await task.await(15_000)).toBe(42);
    await vi.waitFor(() => expect(otel.spans('process report.build')).toHaveLength(1), { timeout: 5000 });
    const [request] = otel.spans('request');
    const [send] = otel.spans('send report.build');
    const [processed] = otel.spans('process report.build');
    expect(send.kind).toBe(SpanKind.PRODUCER);
    expect(parentOf(send)).toBe(request.spanContext().spanId);
    expect(processed.kind).toBe(SpanKind.CONSUMER);
    expect(parentOf(processed)).toBe(send.spanContext().spanId);
    expect(processed.spanContext().traceId).toBe(request.spanContext().traceId);
    for (const span of [send, processed]) {
      expect(span.attributes).toMatchObject({
        'messaging.system': 'bullmq',
        'messaging.destination.name': 'report.build',
        'messaging.message.id': task.id,
      });
    }
    // The handler runs inside the consumer span, and its payload is exactly what was sent.
    expect(traceIds).toEqual([request.spanContext().traceId]);
    expect(payloads).toEqual([{ n: 21 }]);
  });

  it('each attempt is its own CONSUMER span; a failed attempt is ERROR, its log line names the trace', async () => {
    const supervisor = api.app.get(DurableSupervisor);
    const task = await supervisor.async<{ n: number; fail: boolean }, number>('report.build', { n: 1, fail: true });
    expect(await task.await(15_000)).toBe(2);
    await vi.waitFor(() => expect(otel.spans('process report.build')).toHaveLength(2), { timeout: 5000 });
    const attempts = otel
      .spans('process report.build')
      .map((s) => [s.attributes['concurrency.task.attempt'], s.status.code]);
    expect(attempts).toEqual([
      [1, SpanStatusCode.ERROR],
      [2, SpanStatusCode.UNSET],
    ]);
    const [send] = otel.spans('send report.build');
    for (const span of otel.spans('process report.build')) expect(parentOf(span)).toBe(send.spanContext().spanId);
    // The failed attempt's log line on the worker names the trace.
    expect(worker.logger.text('error')).toContain(`traceId=${send.spanContext().traceId}`);
  });
});
