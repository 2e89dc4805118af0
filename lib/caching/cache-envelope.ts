import type { Observable } from 'rxjs';
import type { ResponseMeta } from './response-meta.js';
import { decodeValue, encodeValue } from './methods/value-codec.js';

/** A cached response body with where and when it was computed (to tell MISS from HIT). Internal. */
export interface CacheEnvelope {
  /** The handler's result. */
  __ncBody: unknown;
  /** Sequence number of the computation on its instance. */
  s: number;
  /** The instance that computed it. */
  o: string;
  /** When the entry expires (epoch ms, including stale-while-revalidate), whichever store it is copied to. */
  e: number;
  /** The status and headers the handler set (a route's response), replayed wherever the body is served. */
  r?: ResponseMeta;
  /**
   * In a store only: `__ncBody` is in seroval's JSON form (a cached method's value, which keeps its types: Date, Map,
   * Set, bigint, Buffer, nested undefined). Absent: the body is stored as it is (a route's response, getOrStore).
   */
  t?: 1;
}

/**
 * Envelopes whose body keeps its types in the L2 (cached methods' values, and such envelopes read back from the L2):
 * written in seroval's JSON form, read back as they were. Internal.
 */
const typed = new WeakSet<CacheEnvelope>();

/** Marks `envelope` (a cached method's value) to be written to the L2 stores in a form that keeps its types. */
export function markTyped(envelope: CacheEnvelope): CacheEnvelope {
  typed.add(envelope);
  return envelope;
}

/**
 * What is written to an L2 store for `value`: a typed envelope with its body encoded (throws an Error saying what
 * cannot be carried), anything else as it is. Internal.
 */
export function packForStore(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || !typed.has(value as CacheEnvelope)) return value;
  const envelope = value as CacheEnvelope;
  return { ...envelope, __ncBody: encodeValue(envelope.__ncBody), t: 1 };
}

/**
 * A value read from an L2 store: a typed envelope with its body decoded (and marked typed again, for any write back),
 * anything else as it is. Throws on a typed body it cannot decode. Internal.
 */
export function unpackFromStore(value: unknown): unknown {
  if (!isEnvelope(value) || value.t !== 1) return value;
  const { t: _t, ...rest } = value;
  void _t;
  return markTyped({ ...rest, __ncBody: decodeValue(value.__ncBody) });
}

export function isEnvelope(value: unknown): value is CacheEnvelope {
  return typeof value === 'object' && value !== null && '__ncBody' in value;
}

/**
 * The `ttl` option of `wrap()`: an envelope keeps its absolute expiry when cache-manager copies it from an L2 store
 * into the L1 (else the copy would live a full TTL again); other values get `fallback` ms.
 */
export function remainingTtl(fallback: number): (value: unknown) => number {
  const whole = Math.ceil(fallback);
  return (value) =>
    isEnvelope(value) && typeof value.e === 'number' ? Math.max(1, Math.ceil(value.e - Date.now())) : whole;
}

/**
 * Thrown inside `wrap()` for a result that must not be stored (undefined, a stream, an error status): nothing is
 * written. `stream`: `value` is the Observable of a handler that emitted more than once. Internal.
 */
export class NotCacheable extends Error {
  constructor(
    readonly value: unknown,
    readonly stream = false,
  ) {
    super('not cacheable');
  }

  /**
   * Releases a result nobody will send (a background refresh's): ends the handler's subscription or stream (a Node
   * stream, a `StreamableFile`'s stream, a web `ReadableStream`, an async iterator).
   */
  discard(): void {
    try {
      if (this.stream) {
        (this.value as Observable<unknown>).subscribe().unsubscribe();
        return;
      }
      const value = this.value as Record<string, unknown> | null;
      if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return;
      if (typeof value.destroy === 'function') (value as { destroy(): void }).destroy();
      else if (typeof value.getStream === 'function') {
        // A StreamableFile: its Node stream.
        const stream = (value as { getStream(): { destroy?: () => void } | undefined }).getStream();
        if (typeof stream?.destroy === 'function') stream.destroy();
      } else if (typeof value.cancel === 'function' && typeof value.getReader === 'function') {
        settleQuietly((value as { cancel(): unknown }).cancel()); // a web ReadableStream
      } else if (typeof value.return === 'function' && typeof value.next === 'function') {
        settleQuietly((value as { return(): unknown }).return()); // an async (or sync) iterator
      }
    } catch {
      // already ended, or a member that throws
    }
  }
}

/** Ignores the rejection of a promise nobody awaits (a cancel or return that fails). */
function settleQuietly(result: unknown): void {
  try {
    if (result instanceof Promise) result.catch(() => undefined);
  } catch {
    // not a promise after all
  }
}

/** `error instanceof NotCacheable`, false where the check itself throws (a Proxy thrown by user code). Internal. */
export function isNotCacheable(error: unknown): error is NotCacheable {
  try {
    return error instanceof NotCacheable;
  } catch {
    return false;
  }
}
