import { type INestApplication, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { type Span, SpanStatusCode, trace } from '@opentelemetry/api';
import { ConcurrencyModule, type ConcurrencyModuleOptions, FanOut } from 'nestjs-concurrency';
import { installTracing, parentOf } from './tracing-utils.js';

async function boot(options: ConcurrencyModuleOptions = {}) {
  @Module({ imports: [ConcurrencyModule.forRoot(options)] })
  class AppModule {}
  const app = await NestFactory.create(AppModule, { abortOnError: false, logger: false });
  await app.init();
  return app;
}

describe('tracing: fan-out calls (real OpenTelemetry SDK, in-memory exporter)', () => {
  let otel: ReturnType<typeof installTracing>;
  let app: INestApplication | undefined;
  beforeEach(() => {
    otel = installTracing();
  });
  afterEach(async () => {
    await app?.close();
    app = undefined;
    await otel.uninstall();
  });

  it('a map() call is one span `fan-out map` under the caller span; work inside an item is its child', async () => {
    app = await boot();
    const fanOut = app.get(FanOut);
    await otel.tracer.startActiveSpan('request', async (request: Span) => {
      await fanOut.map([1, 2, 3], async (n) => otel.tracer.startSpan(`item ${n}`).end(), { concurrency: 2 });
      request.end();
    });
    const [call] = otel.spans('fan-out map');
    expect(parentOf(call)).toBe(otel.spans('request')[0].spanContext().spanId);
    expect(call.attributes).toMatchObject({
      'concurrency.fan_out.items': 3,
      'concurrency.fan_out.concurrency': 2,
      'concurrency.outcome': 'completed',
    });
    for (const n of [1, 2, 3]) expect(parentOf(otel.spans(`item ${n}`)[0])).toBe(call.spanContext().spanId);
    expect(otel.spans('fan-out item')).toEqual([]);
  });

  it('a failed map() sets ERROR; settle() and stream() have their own names', async () => {
    app = await boot();
    const fanOut = app.get(FanOut);
    await expect(
      fanOut.map([1], () => {
        throw new Error('item failed');
      }),
    ).rejects.toThrow('item failed');
    await fanOut.settle([1, 2], (n) => n);
    for await (const outcome of fanOut.stream([1], (n) => n)) void outcome;
    expect(otel.spans('fan-out map')[0].status).toMatchObject({ code: SpanStatusCode.ERROR, message: 'item failed' });
    expect(otel.spans('fan-out settle')[0].status.code).toBe(SpanStatusCode.UNSET);
    expect(otel.spans('fan-out stream')).toHaveLength(1);
  });

  it('tracing.fanOutItems adds a span per item, child of the call span', async () => {
    app = await boot({ tracing: { fanOutItems: true } });
    await app.get(FanOut).map([10, 20], (n) => {
      expect(trace.getActiveSpan()).toBeDefined();
      return n;
    });
    const [call] = otel.spans('fan-out map');
    const items = otel.spans('fan-out item');
    expect(items.map((s) => s.attributes['concurrency.fan_out.index']).sort()).toEqual([0, 1]);
    for (const item of items) expect(parentOf(item)).toBe(call.spanContext().spanId);
  });

  it('tracing: false makes no fan-out span', async () => {
    app = await boot({ tracing: false });
    await app.get(FanOut).map([1, 2], (n) => n);
    expect(otel.spans()).toEqual([]);
  });
});
