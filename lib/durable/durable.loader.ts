import type * as BullMQ from 'bullmq';
import { errorMessage } from '../utils/describe.js';
import { BULLMQ_MISSING } from './durable.messages.js';

/** @internal The parts of `bullmq` durable tasks use. */
export type BullMQModule = Pick<
  typeof BullMQ,
  'Queue' | 'Worker' | 'QueueEvents' | 'UnrecoverableError' | 'WaitingError'
>;

/**
 * @internal Loads the optional peer `bullmq`, only when `durable` is configured, so an application without it boots.
 * The ES module build keeps `import()`; the CommonJS build compiles it to `require()`: both load bullmq's own build
 * of that kind.
 */
export async function loadBullMQ(): Promise<BullMQModule> {
  try {
    const bullmq = await import('bullmq');
    return bullmq;
  } catch (error) {
    throw new Error(BULLMQ_MISSING(errorMessage(error)), { cause: error });
  }
}

/**
 * @internal BullMQ connection options for `durable.connection` (a URL, ioredis options or an ioredis client), with
 * `extra` on top. A client is not shared as it is: each role needs settings of its own (a worker or QueueEvents
 * connection `maxRetriesPerRequest: null`, which BullMQ requires; a Queue that adds jobs fails fast), so its options
 * are copied, as a URL's are, and the client itself stays the application's (never used, never closed here).
 */
export function connectionOptions(connection: string | object, extra: object): BullMQ.ConnectionOptions {
  if (typeof connection === 'string') return { url: connection, ...extra };
  if (isRedisClient(connection)) return { ...connection.options, ...extra } as BullMQ.ConnectionOptions;
  return { ...connection, ...extra };
}

/** @internal An ioredis client instance (`new Redis()`, or a Cluster: `isCluster` is true then). */
export function isRedisClient(value: object): value is { options: object; isCluster?: boolean } {
  return typeof (value as { duplicate?: unknown }).duplicate === 'function';
}

/** @internal The Redis commands durable tasks send themselves (BullMQ's client forwards them to ioredis). */
export interface RawRedis {
  ping(): Promise<unknown>;
  sadd(key: string, ...members: string[]): Promise<number>;
  smembers(key: string): Promise<string[]>;
  exists(key: string): Promise<number>;
  set(key: string, value: string, px: 'PX', ms: number, nx: 'NX'): Promise<'OK' | null>;
  publish(channel: string, message: string): Promise<number>;
  subscribe(channel: string): Promise<unknown>;
  xadd(key: string, ...args: Array<string | number>): Promise<unknown>;
  duplicate(options?: object): RawRedis;
  on(event: string, listener: (...args: never[]) => void): unknown;
  disconnect(): void;
}

/** @internal The raw client of a BullMQ Queue or Worker (its regular, non-blocking connection). */
export async function rawClient(owner: { backend: unknown }): Promise<RawRedis> {
  return (await (owner.backend as { client: Promise<unknown> }).client) as RawRedis;
}

/**
 * @internal Keeps an `'error'` listener on the raw connections of a BullMQ Queue, Worker or QueueEvents for good:
 * BullMQ removes its own while closing, and ioredis prints "Unhandled error event" for each reconnect attempt that
 * fails after that (a close during a Redis outage). The errors before are reported by BullMQ's `'error'` event.
 */
export function keepErrorListener(owner: { backend: unknown }): void {
  const backend = owner.backend as { client: Promise<unknown>; blockingClient?: Promise<unknown> };
  for (const client of [backend.client, backend.blockingClient]) {
    client?.then(
      (c) => (c as RawRedis).on('error', () => undefined),
      () => undefined,
    );
  }
}
