/* oxlint-disable unicorn/no-thenable -- hostile thenables are what this spec returns from jobs, on purpose */
import type { INestApplication } from '@nestjs/common';
import { Injectable } from '@nestjs/common';
import fc from 'fast-check';
import { InMemoryJobLock, Interval, JobRegistry } from 'nestjs-concurrency';
import { bootJobs, closeFaked, RecordingLogger } from './utils/boot.js';

const T0 = new Date('2030-01-01T00:00:00.000Z').getTime();

/** Values user code may throw that cannot be turned into a string, or whose inspection throws. */
const hostileValues: (() => unknown)[] = [
  () => Symbol('boom'),
  () => Object.create(null),
  () => ({
    toString() {
      throw new Error('toString throws');
    },
  }),
  () => ({
    [Symbol.toPrimitive]() {
      throw new Error('toPrimitive throws');
    },
  }),
  () =>
    new Proxy(
      {},
      {
        get() {
          throw new Error('get trap');
        },
        getPrototypeOf() {
          throw new Error('getPrototypeOf trap');
        },
        has() {
          throw new Error('has trap');
        },
        ownKeys() {
          throw new Error('ownKeys trap');
        },
        getOwnPropertyDescriptor() {
          throw new Error('getOwnPropertyDescriptor trap');
        },
      },
    ),
  () => {
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    return proxy;
  },
  () =>
    Object.defineProperty(new Error('message getter'), 'message', {
      get() {
        throw new Error('message throws');
      },
    }),
  () =>
    Object.defineProperty(new Error('stack getter'), 'stack', {
      get() {
        throw new Error('stack throws');
      },
    }),
  () => undefined,
  () => null,
];

const thrownValue: fc.Arbitrary<() => unknown> = fc.oneof(
  fc.constantFrom(...hostileValues),
  fc
    .anything({
      withNullPrototype: true,
      withBigInt: true,
      withDate: true,
      withMap: true,
      withSet: true,
      withTypedArray: true,
      withSparseArray: true,
      withBoxedValues: true,
    })
    .map((value) => () => value),
);

/** What one run does, and whether it must count as a failure. */
interface Behaviour {
  label: string;
  fails: boolean;
  run(): unknown;
}

const behaviour: fc.Arbitrary<Behaviour> = fc.oneof(
  thrownValue.map<Behaviour>((make) => ({
    label: 'throws',
    fails: true,
    run() {
      throw make();
    },
  })),
  thrownValue.map<Behaviour>((make) => ({
    label: 'rejects',
    fails: true,
    async run() {
      await Promise.resolve();
      throw make();
    },
  })),
  thrownValue.map<Behaviour>((make) => ({
    label: 'returns a rejected promise',
    fails: true,
    run: () => Promise.reject(make()),
  })),
  thrownValue.map<Behaviour>((make) => ({
    label: 'returns an object whose then getter throws',
    fails: true,
    run: () =>
      Object.defineProperty({}, 'then', {
        get() {
          throw make();
        },
      }),
  })),
  thrownValue.map<Behaviour>((make) => ({
    label: 'returns a thenable whose then throws',
    fails: true,
    run: () => ({
      then() {
        throw make();
      },
    }),
  })),
  thrownValue.map<Behaviour>((make) => ({
    label: 'returns a thenable that rejects',
    fails: true,
    run: () => ({
      then(_: unknown, reject: (reason: unknown) => void) {
        queueMicrotask(() => reject(make()));
      },
    }),
  })),
  thrownValue.map<Behaviour>((make) => ({
    label: 'returns a thenable that resolves, then throws',
    fails: false,
    run: () => ({
      then(resolve: (value: unknown) => void) {
        resolve(1);
        throw make();
      },
    }),
  })),
  thrownValue.map<Behaviour>((make) => ({
    label: 'returns an object whose then getter works once, then throws',
    fails: false,
    run() {
      let reads = 0;
      return Object.defineProperty({}, 'then', {
        get() {
          if (reads++ > 0) throw make();
          return (resolve: (value: unknown) => void) => resolve(undefined);
        },
      });
    },
  })),
  thrownValue.map<Behaviour>((make) => {
    // Returning a value fails the run only where reading its `then` throws (a hostile Proxy), as `await` would.
    let fails = false;
    let thenable = false;
    try {
      thenable = typeof (make() as { then?: unknown } | null)?.then === 'function';
    } catch {
      fails = true;
    }
    return {
      label: fails ? 'returns a value whose then cannot be read' : 'returns a value',
      fails,
      run: () => (thenable ? undefined : make()), // a value with a callable `then` is a thenable, covered above
    };
  }),
);

/** Records unhandled rejections and uncaught exceptions while a property runs. */
function processFaults() {
  const faults: unknown[] = [];
  const onFault = (error: unknown) => faults.push(error);
  process.on('unhandledRejection', onFault);
  process.on('uncaughtException', onFault);
  return {
    faults,
    stop() {
      process.off('unhandledRejection', onFault);
      process.off('uncaughtException', onFault);
    },
  };
}

/** Two jobs running whatever the queue says: one plain, one through a lock. Each run takes the next behaviour. */
function hostileJobs(queue: Behaviour[]) {
  @Injectable()
  class Hostile {
    @Interval(100, { name: 'hostile: plain' })
    plain() {
      return (queue.shift()?.run ?? (() => undefined))();
    }

    @Interval(100, { name: 'hostile: locked', lock: true, initialDelay: 50 })
    locked() {
      return (queue.shift()?.run ?? (() => undefined))();
    }
  }
  return Hostile;
}

describe('a job that throws, rejects or returns anything fails that run only (property-based, fake timers)', () => {
  let app: INestApplication;
  let logger: RecordingLogger;
  const queue: Behaviour[] = [];

  beforeEach(async () => {
    vi.useFakeTimers({ now: T0 });
    queue.length = 0;
    logger = new RecordingLogger();
    app = await bootJobs([hostileJobs(queue)], { jobs: { lock: new InMemoryJobLock() } }, logger);
  });
  afterEach(async () => {
    await closeFaked(app);
    vi.useRealTimers();
  });

  it('via JobRegistry.trigger(): rejects with the value, counts and logs the failure by name, never a process fault', async () => {
    const registry = app.get(JobRegistry);
    registry.pause('hostile: plain');
    registry.pause('hostile: locked');
    const watch = processFaults();
    let expectedFailures = 0;
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(behaviour, { minLength: 1, maxLength: 5 }), async (behaviours) => {
          const before = registry.list();
          for (const [i, b] of behaviours.entries()) {
            queue.push(b);
            const outcome = await registry.trigger(i % 2 === 0 ? 'hostile: plain' : 'hostile: locked').then(
              () => 'fulfilled',
              () => 'rejected',
            );
            expect(outcome, b.label).toBe(b.fails ? 'rejected' : 'fulfilled');
          }
          await vi.advanceTimersByTimeAsync(0);
          const fails = behaviours.filter((b) => b.fails).length;
          expectedFailures += fails;
          const after = registry.list();
          expect(queue).toHaveLength(0);
          expect(after.reduce((n, info, i) => n + info.runs - before[i].runs, 0)).toBe(behaviours.length);
          expect(after.reduce((n, info, i) => n + info.failures - before[i].failures, 0)).toBe(fails);
          expect(after.every((info) => info.running === 0)).toBe(true);
        }),
        { numRuns: 150 },
      );
      await vi.advanceTimersByTimeAsync(0);
    } finally {
      watch.stop();
    }
    expect(watch.faults).toEqual([]);
    expect(logger.errors.filter((m) => m.startsWith('Job "hostile: '))).toHaveLength(expectedFailures);
  });

  it('via timer ticks, with and without a lock: later ticks still run and the counts add up', async () => {
    const registry = app.get(JobRegistry);
    const watch = processFaults();
    let expectedFailures = 0;
    let ticks = 0;
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(behaviour, { minLength: 1, maxLength: 6 }), async (behaviours) => {
          const before = registry.list();
          queue.push(...behaviours);
          // Two ticks per 100 ms (the locked job at 50, the plain one at 100), each taking the next behaviour; an
          // odd count leaves the last tick nothing to take (it returns undefined).
          const expectedRuns = 2 * Math.ceil(behaviours.length / 2);
          await vi.advanceTimersByTimeAsync((expectedRuns / 2) * 100);
          await vi.advanceTimersByTimeAsync(0);
          const after = registry.list();
          const fails = behaviours.filter((b) => b.fails).length;
          ticks += expectedRuns;
          expectedFailures += fails;
          expect(queue).toHaveLength(0);
          expect(after.reduce((n, info, i) => n + info.runs - before[i].runs, 0)).toBe(expectedRuns);
          expect(after.reduce((n, info, i) => n + info.failures - before[i].failures, 0)).toBe(fails);
          expect(after.every((info) => info.skipped === 0 && info.running === 0)).toBe(true);
        }),
        { numRuns: 100 },
      );
      // The schedule goes on after all that.
      const before = registry.list().map((info) => info.runs);
      await vi.advanceTimersByTimeAsync(1000);
      expect(registry.list().map((info, i) => info.runs - before[i])).toEqual([10, 10]);
    } finally {
      watch.stop();
    }
    expect(watch.faults).toEqual([]);
    expect(ticks).toBeGreaterThan(100);
    expect(logger.errors.filter((m) => m.startsWith('Job "hostile: '))).toHaveLength(expectedFailures);
  });
});
