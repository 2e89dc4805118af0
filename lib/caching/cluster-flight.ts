import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { FLIGHT_POLL_MAX, FLIGHT_POLL_MIN } from './caching.constants.js';
import { type CacheEnvelope, isEnvelope } from './cache-envelope.js';
import type { FlightMessage, RedisLink } from './redis-link.js';

/**
 * Thrown out of `wrap()`'s function when another instance computed the key meanwhile: its value, to be served and kept
 * in this instance's L1 only (cache-manager would write it back to Redis). Every request that joined this instance's
 * call gets it. Internal.
 */
export class LeaderValue extends Error {
  /** Set once the value is in the L1 (the requests that joined share one write). */
  adopted = false;

  constructor(readonly envelope: CacheEnvelope) {
    super('computed by another instance');
  }
}

/**
 * Thrown out of a background refresh's function when another instance holds the key's lease (it refreshes the key
 * for everyone): not a failure, the stale value is served until that instance's value replaces it. Internal.
 */
export class RefreshedElsewhere extends Error {
  constructor() {
    super('refreshed by another instance');
  }
}

/** `error instanceof C`, false where the check itself throws (a Proxy thrown by user code). */
export function isA<T>(error: unknown, type: abstract new (...args: never[]) => T): error is T {
  try {
    return error instanceof type;
  } catch {
    return false;
  }
}

/** One `wrap()` call's part in the cluster single flight (one per request that reaches the cache). Internal. */
export interface FlightCall {
  /** The call is a background refresh (decided by the refresh threshold before the function runs). */
  refresh: boolean;
  /** Whether a value read from the L2 spares the computation (a refresh needs one fresher than the stale one). */
  accepts: (envelope: CacheEnvelope) => boolean;
  /** The lease this call holds while it computes; released once the value is stored, or the computation failed. */
  lease?: string;
  /** The envelope computed under the lease. */
  stored?: CacheEnvelope;
  /** The envelope was written to the Redis L2 (only then is it announced to the waiters). */
  written?: boolean;
}

/**
 * How a wait for a lease's release ended: released with a value stored (`stored`), with a value computed but not
 * stored (`unstored`), without a value (`failed`: the leader's computation failed), or not at all (`lost`: the
 * subscriber's connection failed or the cache closes; `timeout`).
 */
type Wake = 'stored' | 'unstored' | 'failed' | 'lost' | 'timeout';
type Waiter = (wake: Wake) => void;

/**
 * The cluster-wide single flight: around a computation of a missing (or stale) key, a lease on the key in Redis
 * (SET NX PX with a random token, compare-and-set release). The holder computes; the others wait for the release
 * message (Redis pub/sub), read the stored value from the L2, and serve it. Fails open, always: Redis down, slow or
 * failing (the store timeout, then the breaker), or no value within `wait` ms, and the instance computes itself.
 * Internal.
 */
export class ClusterFlight {
  private readonly waiters = new Map<string, Set<Waiter>>();
  /** The calls that computed a key under its lease here and have not released it yet. */
  private readonly leading = new Map<string, FlightCall>();

  constructor(
    private readonly link: RedisLink,
    /** How long a request waits for another instance's computation; also the lease's lifetime in Redis. */
    readonly wait: number,
    /** Reads `key` from the Redis L2 (bounded by the store timeout, undefined on failure). */
    private readonly read: (key: string) => Promise<unknown>,
    /** This instance computes itself because the coordination failed or the wait ran out. */
    private readonly fellBack: () => void,
  ) {}

  /**
   * `compute` under the key's lease, or the value another instance computed (thrown as `LeaderValue`), or for a
   * refresh whose lease another instance holds, `RefreshedElsewhere`. The lease stays in `call.lease`: the caller
   * releases it with `release(key, call)` once the value is stored (or the computation failed).
   */
  async run(key: string, compute: () => Promise<CacheEnvelope>, call: FlightCall): Promise<CacheEnvelope> {
    const deadline = performance.now() + this.wait; // monotonic: a wall clock that jumps (or is faked) is no bound
    for (;;) {
      // Listening before claiming: a release published between the claim and the wait is not missed.
      const woken = this.listen(key);
      const token = randomUUID();
      let leader: boolean;
      try {
        leader = await this.link.claim(key, token, this.wait);
      } catch {
        woken.cancel();
        return this.fallBack(compute);
      }
      if (leader) {
        woken.cancel();
        // The value may have been stored (and the lease released) after cache-manager read the L2 and before the
        // claim: read it again under the lease, so the key is never computed twice.
        const found = await this.read(key);
        if (isEnvelope(found) && call.accepts(found)) {
          void this.link.release(key, token, undefined);
          throw new LeaderValue(found);
        }
        call.lease = token;
        const envelope = await compute();
        call.stored = envelope;
        this.leading.set(key, call);
        return envelope;
      }
      if (call.refresh) {
        woken.cancel();
        throw new RefreshedElsewhere();
      }
      // A release is heard only while the subscriber is subscribed (not before SUBSCRIBE completes at boot, nor while
      // it reconnects, nor once its connection was lost during the wait): then the value and the lease are polled.
      const left = deadline - performance.now();
      let wake: Wake = left <= 0 ? 'timeout' : this.link.subscribed ? await woken.within(left) : 'lost';
      // Also when the claim took the whole wait (within() never ran): a waiter left here would stay until the next
      // release of the key, one more per call while Redis is slow.
      woken.cancel();
      if (wake === 'lost') wake = await this.poll(key, call, deadline);
      const found = await this.read(key);
      if (isEnvelope(found) && call.accepts(found)) throw new LeaderValue(found);
      // Released without a value because the leader's computation failed: take the lease if still in time. Anything
      // else (a value that was not stored, or that cannot be read here, no release heard): compute here at once.
      if (wake !== 'failed' || performance.now() >= deadline) return this.fallBack(compute);
    }
  }

  /**
   * Waits for the value of `key` without the release message (the subscriber is not listening): reads the value and
   * checks the lease, more and more slowly, until the deadline. Throws `LeaderValue` with the value once stored;
   * `failed` once the lease is free without a value (take it); `timeout` at the deadline or when Redis fails.
   */
  private async poll(key: string, call: FlightCall, deadline: number): Promise<Wake> {
    for (let delay = FLIGHT_POLL_MIN; ; delay = Math.min(delay * 2, FLIGHT_POLL_MAX)) {
      const found = await this.read(key);
      if (isEnvelope(found) && call.accepts(found)) throw new LeaderValue(found);
      try {
        if (!(await this.link.held(key))) return 'failed';
      } catch {
        return 'timeout';
      }
      const left = deadline - performance.now();
      if (left <= 0) return 'timeout';
      await sleep(Math.min(delay, left));
    }
  }

  /** A write of `key` to the Redis L2 ended: a leader's value is announced on release only if it was stored. */
  wrote(key: string, value: unknown, stored: boolean): void {
    const call = this.leading.get(key);
    if (call !== undefined && value === call.stored) call.written = stored;
  }

  /** Whether this instance computed `key` under its lease and is about to store it (its write is not skipped). */
  leads(key: string): boolean {
    return this.leading.has(key);
  }

  /** Releases the lease `call` holds, if any, telling the waiters whether a value was stored. Never rejects. */
  release(key: string, call: FlightCall): void {
    const token = call.lease;
    if (token === undefined) return;
    call.lease = undefined;
    if (this.leading.get(key) === call) this.leading.delete(key);
    const stored = call.stored;
    if (stored === undefined) void this.link.release(key, token, undefined);
    else if (call.written === true) void this.link.release(key, token, stored.s);
    else void this.link.release(key, token, undefined, true);
  }

  /** A lease was released (on any instance): its waiters read the value, or take the lease. */
  released(message: FlightMessage): void {
    this.wake(message.k, message.s !== undefined ? 'stored' : message.u === 1 ? 'unstored' : 'failed');
  }

  /** The subscriber's connection failed or the cache closes: nobody waits for a message that may never come. */
  wakeAll(): void {
    for (const key of this.waiters.keys()) this.wake(key, 'lost');
  }

  private wake(key: string, wake: Wake): void {
    const waiting = this.waiters.get(key);
    if (waiting === undefined) return;
    this.waiters.delete(key);
    for (const waiter of waiting) waiter(wake);
  }

  private fallBack(compute: () => Promise<CacheEnvelope>): Promise<CacheEnvelope> {
    this.fellBack();
    return compute();
  }

  /** Registers a waiter for the release of `key`; `within(ms)` resolves with how the wait ended, `timeout` after `ms`. */
  private listen(key: string): { cancel(): void; within(ms: number): Promise<Wake> } {
    let settle: Waiter | undefined;
    let early: Wake | undefined;
    const waiter: Waiter = (wake) => {
      if (settle) settle(wake);
      else early = wake;
    };
    let waiting = this.waiters.get(key);
    if (waiting === undefined) this.waiters.set(key, (waiting = new Set()));
    waiting.add(waiter);
    const cancel = () => {
      const set = this.waiters.get(key);
      if (set === undefined) return;
      set.delete(waiter);
      if (set.size === 0) this.waiters.delete(key);
    };
    return {
      cancel,
      within: (ms) => {
        if (early !== undefined) return Promise.resolve(early);
        return new Promise<Wake>((resolve) => {
          const timer = setTimeout(() => {
            cancel();
            resolve('timeout');
          }, ms);
          settle = (wake) => {
            clearTimeout(timer);
            resolve(wake);
          };
        });
      },
    };
  }
}
