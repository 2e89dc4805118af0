import { StreamableFile } from '@nestjs/common';
import { Observable, type Subscriber, type Subscription } from 'rxjs';
import { NotCacheable } from './cache-envelope.js';

/** A body that can be stored and sent again: not `undefined`, and not a stream of any kind. Internal. */
export function isSingleValue(value: unknown): boolean {
  if (value === undefined || value instanceof StreamableFile) return false;
  if (typeof value !== 'object' || value === null) return true;
  const v = value as { pipe?: unknown; getReader?: unknown; [Symbol.asyncIterator]?: unknown };
  // a Node stream, a web ReadableStream, an async iterable (an async generator, a cursor)
  return typeof v.pipe !== 'function' && typeof v.getReader !== 'function' && v[Symbol.asyncIterator] === undefined;
}

/**
 * The one value `source` (a handler's result) emits before completing. When it emits a second value it is a stream:
 * the promise rejects with `NotCacheable` carrying an Observable that sends what came so far and goes on with the
 * rest (unsubscribing from it ends the source's subscription), so the response is sent as Nest would send it without
 * the cache. Internal.
 */
export function singleValue(source: Observable<unknown>): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let first: unknown;
    let count = 0;
    let tail: Tail | undefined;
    let subscription: Subscription | undefined;
    let ended = false;
    subscription = source.subscribe({
      next(value) {
        if (tail !== undefined) return tail.next(value);
        if (count++ === 0) {
          first = value;
          return;
        }
        tail = new Tail(() => subscription?.unsubscribe());
        tail.next(first);
        tail.next(value);
        first = undefined;
        reject(new NotCacheable(tail.observable, true));
      },
      error(error: unknown) {
        ended = true;
        if (tail !== undefined) tail.error(error);
        else reject(error);
      },
      complete() {
        ended = true;
        if (tail !== undefined) tail.complete();
        else resolve(first);
      },
    });
    if (ended) subscription = undefined;
  });
}

/**
 * The rest of a handler's stream for its one subscriber (Nest's response): what arrived before it subscribed is held,
 * then every value is passed straight on (nothing is kept, however long the stream runs).
 */
class Tail {
  private held: unknown[] = [];
  private sink?: Subscriber<unknown>;
  private end?: { error: unknown } | 'complete';

  readonly observable = new Observable<unknown>((subscriber) => {
    const held = this.held;
    this.held = [];
    for (const value of held) subscriber.next(value);
    if (this.end === 'complete') subscriber.complete();
    else if (this.end !== undefined) subscriber.error(this.end.error);
    else this.sink = subscriber;
    return () => {
      this.sink = undefined;
      this.stop();
    };
  });

  constructor(private readonly stop: () => void) {}

  next(value: unknown): void {
    if (this.sink !== undefined) this.sink.next(value);
    else this.held.push(value);
  }

  error(error: unknown): void {
    if (this.sink !== undefined) this.sink.error(error);
    else this.end = { error };
  }

  complete(): void {
    if (this.sink !== undefined) this.sink.complete();
    else this.end = 'complete';
  }
}

/**
 * Whether the response is still open for headers: not yet sent (Express `headersSent`, Fastify `reply.sent`) nor
 * ended. A handler with `@Res()` may have answered already. Internal.
 */
export function responseOpen(response: unknown): boolean {
  if (typeof response !== 'object' || response === null) return false;
  const r = response as { sent?: boolean; raw?: object; headersSent?: boolean; writableEnded?: boolean };
  if (r.sent === true) return false;
  const raw = (r.raw ?? r) as { headersSent?: boolean; writableEnded?: boolean };
  return raw.headersSent !== true && raw.writableEnded !== true;
}

/** The status code set on the response so far (Express `res.statusCode`, Fastify `reply.statusCode`). Internal. */
export function statusOf(response: unknown): number | undefined {
  const status = (response as { statusCode?: unknown } | undefined)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}
