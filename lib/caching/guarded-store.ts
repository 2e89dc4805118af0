import type { Keyv } from 'keyv';
import { STORE_RETRY_AFTER } from './caching.constants.js';
import { STORE_TIMEOUT } from './caching.messages.js';
import { withTimeout } from '../utils/with-timeout.js';
import { Breaker, StoreTimeoutError } from './breaker.js';
import { redisReader } from './redis-link.js';
import { packForStore, unpackFromStore } from './cache-envelope.js';
import { errorMessage } from '../utils/describe.js';

/** A read value in the form the callers expect (typed envelopes decoded); undefined (a miss) if it cannot be. */
function unpack(value: unknown): unknown {
  try {
    return unpackFromStore(value);
  } catch {
    return undefined;
  }
}

function unpackRaw(raw: unknown): unknown {
  if (typeof raw !== 'object' || raw === null || !('value' in raw)) return raw;
  const value = unpack((raw as { value: unknown }).value);
  return value === undefined ? undefined : { ...raw, value };
}

/**
 * A TTL as the stores need it: whole milliseconds, rounded up (Redis refuses `PX 2099.9999999999995`, and a failed
 * write trips the breaker for the writes after it). Every TTL that reaches an L2 store passes here.
 */
export function wholeMs(ttl: number | undefined): number | undefined {
  return ttl === undefined ? undefined : Math.ceil(ttl);
}

/**
 * Puts a timeout around every call to one Keyv store (L2) and turns its failures into misses and no-op writes,
 * so cache-manager's `wrap()` never waits on, nor rejects because of, a slow or broken store. After a failure the
 * store is skipped for `STORE_RETRY_AFTER` ms (a burst costs one timeout, not one per request). Internal.
 */
export class GuardedStore {
  private readonly breaker = new Breaker(STORE_RETRY_AFTER);
  private failures = 0;
  private failing = false;
  /** Disconnected at shutdown: later calls are misses and no-op writes, never a reconnect. */
  private closed = false;
  private readonly onKeyvError = (error: unknown) => this.fail(error);
  /** On a `@keyv/redis` store: reads whose expiry is Redis's remaining TTL, not the writer's clock. */
  private readonly redisRead: ReturnType<typeof redisReader>;

  constructor(
    readonly keyv: Keyv,
    readonly index: number,
    private readonly timeout: number,
    private readonly report: (store: GuardedStore, error: unknown, firstOfBurst: boolean) => void,
    private readonly recovered: (store: GuardedStore) => void,
  ) {
    this.redisRead = redisReader(keyv);
    // Keyv swallows store errors by default (get -> undefined, set -> false) and emits 'error': count them too.
    keyv.on('error', this.onKeyvError);
  }

  /**
   * Whether a write of `key` is tried even while the breaker is open: the cluster single flight's leader stores the
   * value the other instances wait for (its lease was just taken on this Redis, so Redis answers again).
   */
  urgent?: (key: string) => boolean;
  /** Told the outcome of every write (true: stored), e.g. for the single flight to announce only a stored value. */
  onWrite?: (key: string, value: unknown, stored: boolean) => void;

  get(key: string, options?: { raw: true }): Promise<unknown> {
    const redisRead = this.redisRead;
    if (redisRead !== undefined) {
      return this.call(
        'get',
        async () => (options?.raw ? unpackRaw(await redisRead(key)) : unpack((await redisRead(key))?.value)),
        undefined,
      );
    }
    return this.call(
      'get',
      async () => {
        const found: unknown = await this.keyv.get(key, options as { raw: true });
        return options?.raw ? unpackRaw(found) : unpack(found);
      },
      undefined,
    );
  }

  /**
   * A read that the breaker does not skip (the timeout still bounds it): the single flight's read of a value another
   * instance announced, which a failure a moment ago says nothing about.
   */
  read(key: string): Promise<unknown> {
    if (this.closed) return Promise.resolve(undefined);
    const redisRead = this.redisRead;
    if (redisRead !== undefined) {
      return this.call('get', async () => unpack((await redisRead(key))?.value), undefined, true);
    }
    return this.call('get', async () => unpack(await this.keyv.get(key)), undefined, true);
  }

  /**
   * Why `value` must not be written (too large, not kept as it is by the serializer), or undefined. A refused write is
   * reported through `refused`, and is no store failure (the breaker stays closed).
   */
  admit?: (value: unknown) => Promise<string | undefined>;
  refused?: (store: GuardedStore, key: string, reason: string) => void;

  async set(key: string, value: unknown, ttl?: number): Promise<boolean> {
    let stored = false;
    const urgent = !this.closed && this.urgent !== undefined && this.urgent(key);
    // A write the breaker (or shutdown) skips anyway is not checked either.
    const skipped = !urgent && (this.closed || this.breaker.open);
    let written = value;
    let reason: string | undefined;
    if (!skipped) {
      try {
        written = packForStore(value);
      } catch (error) {
        reason = errorMessage(error);
      }
    }
    if (reason === undefined && !skipped && this.admit !== undefined) reason = await this.admit(written);
    if (reason !== undefined) this.refused?.(this, key, reason);
    else if (!skipped) {
      stored = (await this.call('set', () => this.keyv.set(key, written, wholeMs(ttl)), false, urgent)) === true;
    }
    this.onWrite?.(key, value, stored);
    return stored;
  }

  delete(key: string): Promise<boolean> {
    return this.call('delete', () => this.keyv.delete(key), false);
  }

  getMany(keys: string[]): Promise<unknown[]> {
    return this.call(
      'getMany',
      async () => (await this.keyv.getMany(keys)).map(unpack),
      keys.map(() => undefined),
    );
  }

  setMany(entries: { key: string; value: unknown; ttl?: number }[]): Promise<boolean[]> {
    return this.call(
      'setMany',
      () =>
        this.keyv.setMany(
          entries.flatMap((entry) => {
            try {
              return [{ ...entry, value: packForStore(entry.value), ttl: wholeMs(entry.ttl) }];
            } catch {
              return []; // a value that cannot be carried is not written (a miss for the other instances)
            }
          }),
        ),
      [],
    );
  }

  deleteMany(keys: string[]): Promise<boolean> {
    return this.call('deleteMany', () => this.keyv.deleteMany(keys), false);
  }

  clear(): Promise<void> {
    return this.call('clear', () => this.keyv.clear(), undefined);
  }

  async disconnect(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.keyv.off('error', this.onKeyvError);
    await this.call('disconnect', () => this.keyv.disconnect(), undefined, true);
  }

  private async call<T>(method: string, fn: () => Promise<T>, fallback: T, always = false): Promise<T> {
    if (!always && (this.closed || this.breaker.open)) return fallback;
    const failuresBefore = this.failures;
    try {
      const result = await withTimeout(
        fn(),
        this.timeout,
        () => new StoreTimeoutError(STORE_TIMEOUT(this.index, method, this.timeout)),
      );
      if (this.failing && this.failures === failuresBefore) {
        this.failing = false;
        this.recovered(this);
      }
      return this.failures === failuresBefore ? result : fallback;
    } catch (error) {
      this.fail(error);
      return fallback;
    }
  }

  private fail(error: unknown): void {
    this.failures++;
    this.breaker.trip();
    const first = !this.failing;
    this.failing = true;
    this.report(this, error, first);
  }
}
