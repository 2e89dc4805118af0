import { type INestApplication, Injectable, type LoggerService, Module, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { type Span, SpanStatusCode } from '@opentelemetry/api';
import {
  CacheService,
  ConcurrencyModule,
  type ConcurrencyModuleOptions,
  getSupervisorToken,
  Interval,
  JobRegistry,
  type TaskSupervisor,
} from 'nestjs-concurrency';
import { readFileSync } from 'node:fs';
import { installTracing, parentOf } from './tracing-utils.js';
import { TRACER_VERSION } from '../../lib/observability/tracing/tracing.constants.js';

class Recording implements LoggerService {
  readonly errors: string[] = [];
  log(): void {}
  warn(): void {}
  error(message: unknown): void {
    this.errors.push(String(message));
  }
}

@Injectable()
class Reports {
  @Interval(60_000, { name: 'reports' })
  run() {}
}

async function boot(
  options: ConcurrencyModuleOptions = {},
  logger: LoggerService | false = false,
  providers: Type[] = [Reports],
) {
  @Module({ imports: [ConcurrencyModule.forRoot(options)], providers })
  class AppModule {}
  const app = await NestFactory.create(AppModule, { abortOnError: false, logger });
  await app.init();
  return app;
}

const supervisorOf = (app: INestApplication) => app.get<TaskSupervisor>(getSupervisorToken('default'));

describe('tracing: supervised tasks and jobs (real OpenTelemetry SDK, in-memory exporter)', () => {
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

  it('names the tracer after the package and its version', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(TRACER_VERSION).toBe(pkg.version);
  });

  it('a child is a span `task <supervisor>` under the span active at startChild, with its attributes', async () => {
    app = await boot();
    const sup = supervisorOf(app);
    await otel.tracer.startActiveSpan('request', async (request: Span) => {
      await sup.async(() => 'done').await();
      request.end();
    });
    const [task] = otel.spans('task default');
    const [request] = otel.spans('request');
    expect(parentOf(task)).toBe(request.spanContext().spanId);
    expect(task.spanContext().traceId).toBe(request.spanContext().traceId);
    expect(task.attributes).toMatchObject({
      'concurrency.supervisor': 'default',
      'concurrency.task.id': expect.stringMatching(/^default-\d+$/),
      'concurrency.task.attempt': 1,
      'concurrency.outcome': 'completed',
    });
    expect(task.status.code).toBe(SpanStatusCode.UNSET);
  });

  it('two starters in the same tick under two spans: each task is the child of its own starter', async () => {
    app = await boot();
    const sup = supervisorOf(app);
    const a = otel.tracer.startSpan('a');
    const b = otel.tracer.startSpan('b');
    const { context, trace } = await import('@opentelemetry/api');
    const ta = context.with(trace.setSpan(context.active(), a), () => sup.async(() => 1, { name: 'ta' }));
    const tb = context.with(trace.setSpan(context.active(), b), () => sup.async(() => 2, { name: 'tb' }));
    await Promise.all([ta.await(), tb.await()]);
    a.end();
    b.end();
    expect(parentOf(otel.spans('task ta')[0])).toBe(a.spanContext().spanId);
    expect(parentOf(otel.spans('task tb')[0])).toBe(b.spanContext().spanId);
  });

  it('a failure sets status ERROR, records the exception, and the failure log carries the traceId', async () => {
    const logger = new Recording();
    app = await boot({}, logger);
    supervisorOf(app).startChild(
      () => {
        throw new Error('boom');
      },
      { name: 'mailer' },
    );
    await vi.waitFor(() => expect(otel.spans('task mailer')).toHaveLength(1));
    const [span] = otel.spans('task mailer');
    expect(span.status).toMatchObject({ code: SpanStatusCode.ERROR, message: 'boom' });
    expect(span.events.map((e) => e.name)).toContain('exception');
    expect(span.attributes['concurrency.outcome']).toBe('failed');
    await vi.waitFor(() => expect(logger.errors.join('\n')).toContain(`traceId=${span.spanContext().traceId}`));
  });

  it('each attempt of a restarted child is its own span; a timeout and an abort say so', async () => {
    app = await boot({}, false);
    const sup = supervisorOf(app);
    let attempts = 0;
    sup.startChild(
      () => {
        if (++attempts === 1) throw new Error('first');
      },
      { name: 'flaky', restart: 'transient' },
    );
    sup.startChild((ctx) => new Promise((resolve) => ctx.signal.addEventListener('abort', resolve)), {
      name: 'slow',
      timeout: 20,
    });
    const ref = sup.startChild((ctx) => new Promise((resolve) => ctx.signal.addEventListener('abort', resolve)), {
      name: 'stopped',
    });
    await new Promise((resolve) => setTimeout(resolve, 10));
    await sup.terminateChild(ref.id);
    await vi.waitFor(() => expect(otel.spans('task flaky')).toHaveLength(2));
    await vi.waitFor(() => expect(otel.spans('task slow')).toHaveLength(1));
    const flaky = otel
      .spans('task flaky')
      .map((s) => [s.attributes['concurrency.task.attempt'], s.attributes['concurrency.outcome']]);
    expect(flaky).toEqual([
      [1, 'failed'],
      [2, 'completed'],
    ]);
    const [slow] = otel.spans('task slow');
    expect(slow.attributes['concurrency.outcome']).toBe('timeout');
    expect(slow.status.code).toBe(SpanStatusCode.ERROR);
    const [stopped] = otel.spans('task stopped');
    expect(stopped.attributes['concurrency.outcome']).toBe('terminated');
    expect(stopped.events.map((e) => e.name)).toContain('aborted');
  });

  it('a scheduled run is a root span `job <name>`; trigger() is a child of the caller span', async () => {
    app = await boot();
    const registry = app.get(JobRegistry);
    await otel.tracer.startActiveSpan('admin', async (admin: Span) => {
      await registry.trigger('reports');
      admin.end();
    });
    const [job] = otel.spans('job reports');
    expect(parentOf(job)).toBe(otel.spans('admin')[0].spanContext().spanId);
    expect(job.attributes).toMatchObject({
      'concurrency.job.name': 'reports',
      'concurrency.job.kind': 'interval',
      'concurrency.job.scheduled_at': expect.any(String),
      'concurrency.outcome': 'completed',
    });
  });

  it("a failed job run's log line carries its trace id", async () => {
    @Injectable()
    class Failing {
      @Interval(60_000, { name: 'failing' })
      run() {
        throw new Error('job failed');
      }
    }
    const logger = new Recording();
    app = await boot({}, logger, [Failing]);
    await expect(app.get(JobRegistry).trigger('failing')).rejects.toThrow('job failed');
    const [job] = otel.spans('job failing');
    expect(job.status.code).toBe(SpanStatusCode.ERROR);
    expect(logger.errors.join('\n')).toContain(`traceId=${job.spanContext().traceId}`);
  });

  it('a scheduled tick is a root span: a new trace, even for an app booted inside a span', async () => {
    @Injectable()
    class Ticker {
      @Interval(30, { name: 'ticker' })
      run() {}
    }
    app = await otel.tracer.startActiveSpan('boot', async (span: Span) => {
      const booted = await boot({}, false, [Ticker]);
      span.end();
      return booted;
    });
    await vi.waitFor(() => expect(otel.spans('job ticker').length).toBeGreaterThan(0), { timeout: 5000 });
    const [tick] = otel.spans('job ticker');
    expect(parentOf(tick)).toBeUndefined();
    expect(tick.spanContext().traceId).not.toBe(otel.spans('boot')[0].spanContext().traceId);
    // The run's task span is the job span's child.
    await vi.waitFor(() => expect(otel.spans('task ticker').length).toBeGreaterThan(0));
    const task = otel.spans('task ticker').find((t) => t.spanContext().traceId === tick.spanContext().traceId)!;
    expect(parentOf(task)).toBe(tick.spanContext().spanId);
  });

  it('a cache lookup sets its result on the active span, without a span of its own', async () => {
    app = await boot();
    const cache = app.get(CacheService);
    for (const name of ['first', 'second']) {
      await otel.tracer.startActiveSpan(name, async (span: Span) => {
        await cache.getOrStore('tracing-key', () => 'value');
        span.end();
      });
    }
    expect(otel.spans('first')[0].attributes['concurrency.cache.result']).toBe('miss');
    expect(otel.spans('second')[0].attributes['concurrency.cache.result']).toBe('hit');
    expect(otel.spans().map((s) => s.name)).toEqual(['first', 'second']);
  });

  it('tracing: false makes no span', async () => {
    app = await boot({ tracing: false });
    await supervisorOf(app)
      .async(() => 1)
      .await();
    await app.get(JobRegistry).trigger('reports');
    expect(otel.spans()).toEqual([]);
  });
});

describe('tracing: no tracer provider registered', () => {
  it('creates no span and leaves the supervisors without a tracer', async () => {
    const app = await boot();
    const sup = supervisorOf(app);
    expect((sup as unknown as { tracer: unknown }).tracer).toBeUndefined();
    await sup.async(() => 1).await();
    await app.close();
  });
});

describe('tracing option', () => {
  it.each([
    [{ tracing: 'yes' }, 'tracing'],
    [{ tracing: { fanOutItems: 1 } }, 'tracing.fanOutItems'],
    [{ tracing: { items: true } }, 'tracing.items'],
  ])('rejects %j naming %s', async (options, option) => {
    await expect(boot(options as ConcurrencyModuleOptions)).rejects.toMatchObject({
      name: 'ConcurrencyOptionsError',
      option,
    });
  });
});
