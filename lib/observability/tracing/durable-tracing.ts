import type { Context, Span } from '@opentelemetry/api';
import { CONSUMER, type ConcurrencyTracer, PRODUCER } from './concurrency-tracer.js';
import { ATTR } from './tracing.constants.js';

/** What BullMQ keeps of a job's telemetry options (`opts.telemetry.metadata`, stored as the job option `tm`). */
export interface JobTelemetry {
  metadata: string;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

const messaging = (task: string): Record<string, string> => ({
  'messaging.system': 'bullmq',
  'messaging.destination.name': task,
});

/**
 * @internal A durable start as a PRODUCER span `send <task>`, child of the active span. `add` stores the job with
 * the W3C trace context of that span in its telemetry options (`{"traceparent", "tracestate"}`, as BullMQ's own
 * telemetry carries it), never in the handler's payload. Without a tracer: `add(undefined)`.
 */
export async function traceSend<J>(
  tracer: ConcurrencyTracer | undefined,
  task: string,
  messageId: string,
  add: (telemetry: JobTelemetry | undefined) => Promise<J>,
): Promise<J> {
  if (tracer === undefined) return add(undefined);
  const span = tracer.start(`send ${task}`, messaging(task), PRODUCER);
  const { traceId, spanId, traceFlags, traceState } = span.spanContext();
  const carrier: Record<string, string> = {
    traceparent: `00-${traceId}-${spanId}-${traceFlags.toString(16).padStart(2, '0')}`,
  };
  const state = traceState?.serialize();
  if (state) carrier.tracestate = state;
  try {
    const job = await add({ metadata: JSON.stringify(carrier) });
    span.setAttribute('messaging.message.id', messageId);
    tracer.end(span, 'completed');
    return job;
  } catch (error) {
    tracer.end(span, 'failed', error);
    throw error;
  }
}

/** The producer's context from a job's telemetry metadata, or undefined when it carries none (or garbage). */
function producerContext(tracer: ConcurrencyTracer, metadata: unknown): Context | undefined {
  if (typeof metadata !== 'string') return undefined;
  let carrier: { traceparent?: unknown; tracestate?: unknown };
  try {
    carrier = JSON.parse(metadata) as typeof carrier;
  } catch {
    return undefined;
  }
  const match = typeof carrier?.traceparent === 'string' ? TRACEPARENT.exec(carrier.traceparent) : null;
  if (match === null) return undefined;
  const { api } = tracer;
  return api.trace.setSpanContext(api.ROOT_CONTEXT, {
    traceId: match[1],
    spanId: match[2],
    traceFlags: parseInt(match[3], 16),
    isRemote: true,
  });
}

/**
 * @internal One attempt of a durable task on a worker as a CONSUMER span `process <task>`, child of the producer's
 * span carried in the job (one trace across instances), active while the handler runs.
 */
export async function traceProcess<R>(
  tracer: ConcurrencyTracer | undefined,
  task: string,
  job: { attemptsMade: number; opts?: { telemetry?: { metadata?: unknown } } },
  messageId: string | undefined,
  run: () => Promise<R>,
): Promise<R> {
  if (tracer === undefined) return run();
  const attributes: Record<string, string | number> = {
    ...messaging(task),
    [ATTR.taskAttempt]: job.attemptsMade + 1,
  };
  if (messageId !== undefined) attributes['messaging.message.id'] = messageId;
  const parent = producerContext(tracer, job.opts?.telemetry?.metadata);
  const span: Span = tracer.start(`process ${task}`, attributes, CONSUMER, parent === undefined, parent);
  try {
    const value = await tracer.with(span, run);
    tracer.end(span, 'completed');
    return value;
  } catch (error) {
    tracer.end(span, 'failed', error);
    throw error;
  }
}
