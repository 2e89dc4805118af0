/** One part checked by `ConcurrencyHealthIndicator`: `'jobs.lock'`, `'cache.stores[0]'`, `'durable'`, ... */
export interface HealthPart {
  status: 'up' | 'down';
  /** Why it is down. */
  message?: string;
}

/** What `ConcurrencyHealthIndicator.check()` reports under its key: the parts checked, and the ones that failed. */
export interface ConcurrencyHealthDetails {
  status: 'up' | 'down';
  /** The names of the parts that are down (only when down). */
  failed?: string[];
  [part: string]: HealthPart | string[] | 'up' | 'down' | undefined;
}

/** `{ [key]: details }`: the shape of `@nestjs/terminus`'s `HealthIndicatorResult`. */
export type ConcurrencyHealthResult = Record<string, ConcurrencyHealthDetails>;
