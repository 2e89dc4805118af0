import type { Attributes, Context, Exception, Span, Tracer } from '@opentelemetry/api';
import type * as OpenTelemetryApi from '@opentelemetry/api';
import { errorMessage, errorStack, isError } from '../../utils/describe.js';
import { ATTR, TRACER_NAME, TRACER_VERSION } from './tracing.constants.js';

/** @internal The part of `@opentelemetry/api` tracing uses. */
export type TracingApi = Pick<typeof OpenTelemetryApi, 'trace' | 'context' | 'propagation' | 'ROOT_CONTEXT'>;

/** `SpanKind` and `SpanStatusCode` values (stable in the API), without importing the optional peer eagerly. */
const INTERNAL = 0;
export const PRODUCER = 3;
export const CONSUMER = 4;
const ERROR = 2;

/** How a piece of work ended, as the `concurrency.outcome` attribute says. */
export type SpanOutcome = 'completed' | 'failed' | 'timeout' | 'terminated';

/**
 * @internal The package's tracer, created at boot only when tracing is on and the application registered a tracer
 * provider; everything that traces holds `ConcurrencyTracer | undefined` and checks it once per unit of work.
 */
export class ConcurrencyTracer {
  readonly tracer: Tracer;

  constructor(
    readonly api: TracingApi,
    readonly fanOutItems: boolean,
  ) {
    this.tracer = api.trace.getTracer(TRACER_NAME, TRACER_VERSION);
  }

  /** A span child of the active one (`root`: a new trace), not yet active. */
  start(name: string, attributes: Attributes, kind = INTERNAL, root = false, parent?: Context): Span {
    const ctx = parent ?? (root ? this.api.ROOT_CONTEXT : this.api.context.active());
    return this.tracer.startSpan(name, { kind, attributes, root }, ctx);
  }

  /** Calls `fn` with `span` active (nested work becomes its child). */
  with<A extends unknown[], R>(span: Span, fn: (...args: A) => R, thisArg?: unknown, ...args: A): R {
    const api = this.api;
    return api.context.with(api.trace.setSpan(api.context.active(), span), fn, thisArg, ...args);
  }

  /** Ends `span` with its outcome; a failure or a timeout sets status ERROR and records the exception. */
  end(span: Span, outcome: SpanOutcome, error?: unknown): void {
    span.setAttribute(ATTR.outcome, outcome);
    if (outcome === 'failed' || outcome === 'timeout') {
      span.recordException(toException(error));
      span.setStatus({
        code: ERROR,
        message: outcome === 'timeout' ? `timeout: ${errorMessage(error)}` : errorMessage(error),
      });
    } else if (outcome === 'terminated') {
      span.addEvent('aborted', { 'exception.message': errorMessage(error) });
    }
    span.end();
  }

  /** The trace id of the active span, for failure logs; undefined outside a (sampled or not) span. */
  traceId(): string | undefined {
    return this.api.trace.getActiveSpan()?.spanContext().traceId;
  }
}

/**
 * A plain copy of what the SDK reads from a thrown value, read without throwing: the value itself may be a Proxy whose
 * traps throw or an Error whose getters do, and a throw here would escape the settle path of the failed work.
 */
function toException(error: unknown): Exception {
  if (!isError(error)) return { name: 'Error', message: errorMessage(error) };
  const exception: Exception = { name: 'Error', message: errorMessage(error), stack: errorStack(error) };
  try {
    const { name, code } = error as Error & { code?: unknown };
    if (typeof name === 'string') exception.name = name;
    if (typeof code === 'string' || typeof code === 'number') exception.code = code;
  } catch {
    // a throwing getter: the generic name
  }
  return exception;
}

/**
 * @internal The tracer when tracing is on and a tracer provider is registered (checked once, at boot: the global
 * provider delegates to nothing before an SDK registers), else undefined: no span and no cost then.
 */
export function createTracer(api: TracingApi | undefined, fanOutItems: boolean): ConcurrencyTracer | undefined {
  if (api === undefined) return undefined;
  const provider = api.trace.getTracerProvider() as { getDelegateTracer?: (name: string) => Tracer | undefined };
  if (typeof provider.getDelegateTracer === 'function' && provider.getDelegateTracer(TRACER_NAME) === undefined) {
    return undefined;
  }
  return new ConcurrencyTracer(api, fanOutItems);
}
