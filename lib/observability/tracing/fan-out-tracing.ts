import type { Span } from '@opentelemetry/api';
import { isThenable } from '../../supervisor/utils/is-thenable.util.js';
import type { ConcurrencyTracer } from './concurrency-tracer.js';
import { ATTR } from './tracing.constants.js';

const MODES = ['map', 'settle', 'stream'] as const;

/** @internal The span of one `FanOut` call, `fan-out <map|settle|stream>`, child of the span active at the call. */
export function startFanOutSpan(
  tracer: ConcurrencyTracer,
  mode: number,
  total: number | undefined,
  concurrency: number,
): Span {
  const attributes: Record<string, number> = { [ATTR.fanOutConcurrency]: concurrency };
  if (total !== undefined) attributes[ATTR.fanOutItems] = total;
  return tracer.start(`fan-out ${MODES[mode] ?? 'map'}`, attributes);
}

/** @internal Ends a call's span: the items taken from the input, ERROR when the call itself failed. */
export function endFanOutSpan(
  tracer: ConcurrencyTracer,
  span: Span,
  started: number,
  failed: number,
  error: { reason: unknown } | undefined,
): void {
  span.setAttribute(ATTR.fanOutItems, started);
  span.setAttribute('concurrency.fan_out.failed', failed);
  tracer.end(span, error === undefined ? 'completed' : 'failed', error?.reason);
}

/** @internal `fn` with a span `fan-out item` per item (`tracing.fanOutItems`), child of the call's span. */
export function traceItems<I, O>(
  tracer: ConcurrencyTracer,
  fn: (input: I, ctx: { index: number }) => O,
): (input: I, ctx: { index: number }) => O {
  return (input, ctx) => {
    const span = tracer.start('fan-out item', { [ATTR.fanOutIndex]: ctx.index });
    let result: O;
    try {
      result = tracer.with(span, fn, undefined, input, ctx);
    } catch (error) {
      tracer.end(span, 'failed', error);
      throw error;
    }
    if (isThenable(result)) {
      Promise.resolve(result).then(
        () => tracer.end(span, 'completed'),
        (error: unknown) => tracer.end(span, 'failed', error),
      );
    } else tracer.end(span, 'completed');
    return result;
  };
}
