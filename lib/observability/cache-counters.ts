import type { CacheStats } from '../caching/interfaces/cached-options.interface.js';
import { cacheChannel } from './channels.js';
import type { CacheMessage } from './interfaces/channel-messages.interface.js';

// One frozen message per kind: a subscriber gets an event per counted outcome, and nothing is allocated for it.
const HIT: CacheMessage = Object.freeze({ type: 'hit' });
const MISS: CacheMessage = Object.freeze({ type: 'miss' });
const STALE: CacheMessage = Object.freeze({ type: 'stale' });
const COALESCED: CacheMessage = Object.freeze({ type: 'coalesced' });
const ERROR: CacheMessage = Object.freeze({ type: 'error' });
const REFRESH_ERROR: CacheMessage = Object.freeze({ type: 'refresh-error' });

/**
 * @internal The mutable counters behind `CacheService.stats()`. Each is an accessor, so every `counters.hits++` of the
 * caching code also publishes on `nestjs-concurrency:cache` while someone subscribes. Own enumerable properties:
 * `{ ...counters }` copies the values.
 */
export function createCacheCounters(): CacheStats {
  let hits = 0;
  let misses = 0;
  let stale = 0;
  let coalesced = 0;
  let errors = 0;
  let refreshErrors = 0;
  return {
    // Cluster single flight (issue 15): plain counters, not published.
    clusterFollowers: 0,
    clusterFallbacks: 0,
    get hits() {
      return hits;
    },
    set hits(value: number) {
      if (value > hits && cacheChannel.hasSubscribers) cacheChannel.publish(HIT);
      hits = value;
    },
    get misses() {
      return misses;
    },
    set misses(value: number) {
      if (value > misses && cacheChannel.hasSubscribers) cacheChannel.publish(MISS);
      misses = value;
    },
    get stale() {
      return stale;
    },
    set stale(value: number) {
      if (value > stale && cacheChannel.hasSubscribers) cacheChannel.publish(STALE);
      stale = value;
    },
    get coalesced() {
      return coalesced;
    },
    set coalesced(value: number) {
      if (value > coalesced && cacheChannel.hasSubscribers) cacheChannel.publish(COALESCED);
      coalesced = value;
    },
    get errors() {
      return errors;
    },
    set errors(value: number) {
      if (value > errors && cacheChannel.hasSubscribers) cacheChannel.publish(ERROR);
      errors = value;
    },
    get refreshErrors() {
      return refreshErrors;
    },
    set refreshErrors(value: number) {
      if (value > refreshErrors && cacheChannel.hasSubscribers) cacheChannel.publish(REFRESH_ERROR);
      refreshErrors = value;
    },
  };
}
