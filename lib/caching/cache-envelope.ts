/** A cached response body with where and when it was computed (to tell MISS from HIT). Internal. */
export interface CacheEnvelope {
  /** The handler's result. */
  __ncBody: unknown;
  /** Sequence number of the computation on its instance. */
  s: number;
  /** The instance that computed it. */
  o: string;
}

export function isEnvelope(value: unknown): value is CacheEnvelope {
  return typeof value === 'object' && value !== null && '__ncBody' in value;
}

/** Thrown inside `wrap()` for a result that must not be stored (undefined, a stream): nothing is written. Internal. */
export class NotCacheable extends Error {
  constructor(readonly value: unknown) {
    super('not cacheable');
  }
}
