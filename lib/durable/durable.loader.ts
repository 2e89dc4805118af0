import type * as BullMQ from 'bullmq';
import { errorMessage } from '../utils/describe.js';
import { BULLMQ_MISSING } from './durable.messages.js';

/** @internal The parts of `bullmq` durable tasks use. */
export type BullMQModule = Pick<
  typeof BullMQ,
  'Queue' | 'Worker' | 'QueueEvents' | 'UnrecoverableError' | 'WaitingError' | 'DelayedError'
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
  // Under the application's own options: a retryStrategy it gives wins.
  const base = { retryStrategy: reconnectDelay };
  if (typeof connection === 'string') return { ...base, url: connection, ...extra };
  if (isRedisClient(connection)) return { ...base, ...connection.options, ...extra } as BullMQ.ConnectionOptions;
  return { ...base, ...connection, ...extra };
}

/**
 * @internal The wait before reconnect attempt `times` of every connection durable tasks open: 100 ms doubling, at
 * most 1 s. BullMQ's default grows to 20 s, so after a long outage an instance stayed down up to 20 s after Redis was
 * back (TRAPS: ioredis).
 */
export function reconnectDelay(times: number): number {
  return Math.min(100 * 2 ** Math.max(0, times - 1), MAX_RECONNECT_DELAY);
}

/** @internal The longest wait between two reconnect attempts, in ms. */
export const MAX_RECONNECT_DELAY = 1000;

/**
 * @internal true when the regular connection of a BullMQ Queue, Worker or QueueEvents is up now (checked without
 * waiting): a close with the connection down cannot send QUIT, it is cut instead.
 */
export async function isConnected(owner: { backend: unknown }): Promise<boolean> {
  const client = (owner.backend as { client: Promise<unknown> }).client;
  const status = await Promise.race([
    client.then(
      (c) => (c as RawRedis).status,
      () => undefined,
    ),
    new Promise<undefined>((resolve) => setImmediate(() => resolve(undefined))),
  ]);
  return status === 'ready';
}

/**
 * @internal Cuts the connections of a BullMQ Queue, Worker or QueueEvents without waiting for Redis: their raw
 * clients are disconnected where they exist (BullMQ's own `disconnect()` first waits for a connection that may never
 * come back).
 */
export async function cut(owner: { backend: unknown; disconnect(): Promise<void> }): Promise<void> {
  const backend = owner.backend as { client: Promise<unknown>; blockingClient?: Promise<unknown> };
  const now = <T>(promise: Promise<T> | undefined) =>
    promise === undefined
      ? undefined
      : Promise.race([promise.catch(() => undefined), new Promise<undefined>((r) => setImmediate(() => r(undefined)))]);
  for (const client of await Promise.all([now(backend.client), now(backend.blockingClient)])) {
    (client as RawRedis | undefined)?.disconnect();
  }
  owner.disconnect().catch(() => undefined);
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
  pipeline(): RawPipeline;
  on(event: string, listener: (...args: never[]) => void): unknown;
  disconnect(): void;
  /** ioredis: 'ready' while connected. */
  readonly status?: string;
}

/** @internal The commands of an ioredis pipeline the library queues (each reply is `[error, value]`). */
export interface RawPipeline {
  hmget(key: string, ...fields: string[]): RawPipeline;
  zscore(key: string, member: string): RawPipeline;
  exec(): Promise<Array<[Error | null, unknown]> | null>;
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
