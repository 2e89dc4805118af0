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

/** Thrown inside `wrap()` for a result that must not be stored (undefined, a stream): nothing is written. Internal. */
export class NotCacheable extends Error {
  constructor(readonly value: unknown) {
    super('not cacheable');
  }
}
