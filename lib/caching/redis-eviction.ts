import { Logger } from '@nestjs/common';
import type { Keyv } from 'keyv';
import { EVICT_CHANNEL } from './caching.constants.js';
import { EVICT_PUBLISH_FAILED, EVICT_SUBSCRIBE_FAILED } from './caching.messages.js';

interface RedisLikeClient {
  isOpen?: boolean;
  duplicate(): RedisLikeClient;
  connect(): Promise<unknown>;
  publish(channel: string, message: string): Promise<unknown>;
  subscribe(channel: string, listener: (message: string) => void): Promise<unknown>;
  on(event: 'error', listener: (error: unknown) => void): unknown;
  destroy?: () => void;
  disconnect?: () => Promise<void>;
}

interface KeyvRedisLike {
  client: RedisLikeClient;
  getClient(): Promise<RedisLikeClient>;
}

function redisAdapterOf(keyv: Keyv): KeyvRedisLike | undefined {
  const adapter = (keyv as unknown as { store?: Partial<KeyvRedisLike> }).store;
  return adapter &&
    typeof adapter.getClient === 'function' &&
    typeof (adapter.client as RedisLikeClient | undefined)?.duplicate === 'function'
    ? (adapter as KeyvRedisLike)
    : undefined;
}

/**
 * Publishes evicted keys on Redis and drops the keys other instances evicted from this instance's in-memory L1.
 * Used when one of the L2 stores is a `@keyv/redis` store: it reuses that store's client to publish and a duplicate
 * of it to subscribe. Internal.
 */
export class RedisEviction {
  private subscriber?: RedisLikeClient;
  private closed = false;
  private readonly logger = new Logger('CacheService');

  private constructor(
    private readonly adapter: KeyvRedisLike,
    private readonly origin: string,
    private readonly timeout: number,
    private readonly onRemote: (keys: string[]) => void,
    private readonly onError: (error: unknown) => void,
  ) {}

  static for(
    stores: Keyv[],
    origin: string,
    timeout: number,
    onRemote: (keys: string[]) => void,
    onError: (error: unknown) => void,
  ): RedisEviction | undefined {
    for (const store of stores) {
      const adapter = redisAdapterOf(store);
      if (adapter) return new RedisEviction(adapter, origin, timeout, onRemote, onError);
    }
    return undefined;
  }

  /** Subscribes in the background: a Redis that is down at boot does not delay or fail boot. */
  start(): void {
    const subscriber = this.adapter.client.duplicate();
    this.subscriber = subscriber;
    subscriber.on('error', () => undefined); // reconnects are retried by the client; failures are counted on use
    subscriber
      .connect()
      .then(() =>
        subscriber.subscribe(EVICT_CHANNEL, (message) => {
          try {
            const { o, k } = JSON.parse(message) as { o: string; k: string[] };
            if (o !== this.origin && Array.isArray(k)) this.onRemote(k);
          } catch {
            // not one of ours
          }
        }),
      )
      .catch((error: unknown) => {
        if (this.closed) return;
        this.onError(error);
        this.logger.warn(EVICT_SUBSCRIBE_FAILED);
      });
  }

  async publish(keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.adapter
          .getClient()
          .then((client) => client.publish(EVICT_CHANNEL, JSON.stringify({ o: this.origin, k: keys }))),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`publish timed out after ${this.timeout} ms`)), this.timeout);
        }),
      ]);
    } catch (error) {
      this.onError(error);
      this.logger.warn(EVICT_PUBLISH_FAILED);
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.closed = true;
    const subscriber = this.subscriber;
    this.subscriber = undefined;
    if (!subscriber) return;
    try {
      if (subscriber.destroy) subscriber.destroy();
      else void subscriber.disconnect?.().catch(() => undefined);
    } catch {
      // already closed
    }
  }
}
