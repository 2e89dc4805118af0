import { ISOLATED_TIMEOUT } from '../caching.messages.js';

/** `CacheService.isolated()` could not take its key's lock within `timeout` ms. */
export class IsolatedTimeoutError extends Error {
  constructor(
    readonly key: string,
    readonly timeout: number,
  ) {
    super(ISOLATED_TIMEOUT(key, timeout));
    this.name = 'IsolatedTimeoutError';
  }
}
