import { setTimeout as delay } from 'node:timers/promises';
import type { CacheEnvelope } from '../../lib/caching/cache-envelope.js';
import { ClusterFlight, type FlightCall } from '../../lib/caching/cluster-flight.js';
import type { RedisLink } from '../../lib/caching/redis-link.js';

/** A link whose lease is always held by another instance, and whose claim takes `claimMs`. */
function slowLink(claimMs: number, subscribed = true): RedisLink {
  return {
    subscribed,
    claim: async () => {
      await delay(claimMs);
      return false;
    },
    release: async () => undefined,
  } as unknown as RedisLink;
}

function call(): FlightCall {
  return { refresh: false, accepts: () => true };
}

const computed = (): Promise<CacheEnvelope> => Promise.resolve({ v: 1 } as unknown as CacheEnvelope);

function waiterCount(flight: ClusterFlight): number {
  const waiters = (flight as unknown as { waiters: Map<string, Set<unknown>> }).waiters;
  return [...waiters.values()].reduce((sum, set) => sum + set.size, 0);
}

describe('ClusterFlight (the cluster single flight, on a fake link)', () => {
  it('leaves no waiter registered when the claim takes longer than the wait', async () => {
    let fallbacks = 0;
    const flight = new ClusterFlight(
      slowLink(30),
      10,
      async () => undefined,
      () => fallbacks++,
    );
    for (let i = 0; i < 5; i++) await flight.run('k', computed, call());
    expect(fallbacks).toBe(5);
    expect(waiterCount(flight)).toBe(0);
  });

  it('polls the value and the lease while the subscriber is not subscribed (it could not hear a release)', async () => {
    let fallbacks = 0;
    const started = performance.now();
    const stored = { __ncBody: 'leader', s: 1, o: 'other', e: Date.now() + 60_000 } as CacheEnvelope;
    // The leader stores its value and releases the lease 300 ms from now.
    const done = () => performance.now() - started >= 300;
    const link = {
      subscribed: false,
      claim: async () => false,
      held: async () => !done(),
      release: async () => undefined,
    } as unknown as RedisLink;
    const flight = new ClusterFlight(
      link,
      5_000,
      async () => (done() ? stored : undefined),
      () => fallbacks++,
    );
    await expect(flight.run('k', computed, call())).rejects.toMatchObject({ envelope: stored });
    expect(performance.now() - started).toBeLessThan(2_500);
    expect(fallbacks).toBe(0);
    expect(waiterCount(flight)).toBe(0);
  });

  it('computes at once when polling finds Redis failing', async () => {
    let fallbacks = 0;
    const link = {
      subscribed: false,
      claim: async () => false,
      held: async () => Promise.reject(new Error('down')),
      release: async () => undefined,
    } as unknown as RedisLink;
    const flight = new ClusterFlight(
      link,
      5_000,
      async () => undefined,
      () => fallbacks++,
    );
    const started = performance.now();
    await flight.run('k', computed, call());
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(fallbacks).toBe(1);
  });
});
