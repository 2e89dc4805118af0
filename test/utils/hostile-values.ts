/* oxlint-disable unicorn/no-thenable -- building hostile thenables is the point of this file */
import fc from 'fast-check';

/**
 * Values user code can throw, reject with or return that break naive code: no prototype, a Symbol, a throwing
 * `toString`, an Error whose `message` getter throws, a Proxy whose every trap throws, a revoked Proxy. The
 * arbitraries yield factories (fast-check itself inspects generated values, and a trapped Proxy would throw there);
 * each call makes a fresh value, so identity checks mean something.
 */
export const hostileValue = (): fc.Arbitrary<Maker> =>
  fc.oneof(
    fc.constant(maker('Object.create(null)', () => Object.create(null) as unknown)),
    fc.string().map((s) => maker(`Symbol(${JSON.stringify(s)})`, () => Symbol(s))),
    fc.constant(maker('throwing toString', throwingToString)),
    fc.constant(
      maker('Error with a throwing message getter', () => {
        const error = new Error('x');
        Object.defineProperty(error, 'message', {
          get() {
            throw new Error('message refused');
          },
        });
        return error;
      }),
    ),
    fc.constant(maker('trapped Proxy', () => trappedProxy())),
    fc.constant(
      maker('revoked Proxy', () => {
        const { proxy, revoke } = Proxy.revocable({}, {});
        revoke();
        return proxy;
      }),
    ),
    fc.anything().map((v) => maker(`anything`, () => v)),
  );

/** A value that is not a thenable and does not throw when inspected as one (what a function may well return). */
export const plainValue = (): fc.Arbitrary<Maker> =>
  fc.oneof(
    fc.constant(maker('Object.create(null)', () => Object.create(null) as unknown)),
    fc.string().map((s) => maker(`Symbol(${JSON.stringify(s)})`, () => Symbol(s))),
    fc.constant(maker('throwing toString', throwingToString)),
    fc.constant(maker('{ then: 42 }', () => ({ then: 42 }))),
    fc
      .anything()
      .filter((v) => !(typeof v === 'object' && v !== null && 'then' in v))
      .map((v) => maker('anything', () => v)),
  );

/** A factory of a value, with a label fast-check can print. */
export interface Maker {
  readonly label: string;
  make(): unknown;
}

const maker = (label: string, make: () => unknown): Maker => ({ label, make, toString: () => label }) as Maker;

const throwingToString = () => ({
  toString() {
    throw new Error('toString refused');
  },
});

/** A Proxy whose every trap throws (a "then" read, an instanceof check, a String() conversion). */
export function trappedProxy(...args: [thrown?: unknown]): object {
  const thrown = args.length === 0 ? new Error('trap refused') : args[0];
  const refuse = () => {
    throw thrown;
  };
  return new Proxy(
    {},
    {
      get: refuse,
      has: refuse,
      getPrototypeOf: refuse,
      ownKeys: refuse,
      getOwnPropertyDescriptor: refuse,
    },
  );
}

/** How a function can end, each with the settlement it must be seen to have (as `Promise.resolve` would make it). */
export type EndingKind =
  | 'throw'
  | 'reject'
  | 'then-getter-throws'
  | 'then-throws'
  | 'trapped-proxy'
  | 'return'
  | 'resolve'
  | 'double-callback';

export interface Ending {
  readonly kind: EndingKind;
  readonly maker: Maker;
}

const FAILING: EndingKind[] = ['throw', 'reject', 'then-getter-throws', 'then-throws', 'trapped-proxy'];
const SUCCEEDING: EndingKind[] = ['return', 'resolve', 'double-callback'];

export const ending = (): fc.Arbitrary<Ending> =>
  fc.oneof(
    fc.record({ kind: fc.constantFrom(...FAILING), maker: hostileValue() }),
    fc.record({ kind: fc.constantFrom(...SUCCEEDING), maker: plainValue() }),
  );

/** The value each ending was last performed with (the identity the outcome must carry). */
const performed = new WeakMap<Ending, unknown>();

/** Whether the ending is a failure, and the value it failed or succeeded with when it was performed. */
export const expected = (e: Ending): { failed: boolean; value: unknown } => ({
  failed: FAILING.includes(e.kind),
  value: performed.get(e),
});

/** Runs the ending: what a function body would do. */
export function perform(e: Ending): unknown {
  const value = e.maker.make();
  performed.set(e, value);
  switch (e.kind) {
    case 'throw':
      throw value;
    case 'reject':
      return Promise.reject(value);
    case 'then-getter-throws':
      return Object.defineProperty({}, 'then', {
        get() {
          throw value;
        },
      });
    case 'then-throws':
      return {
        then() {
          throw value;
        },
      };
    case 'trapped-proxy':
      return trappedProxy(value);
    case 'return':
      return value;
    case 'resolve':
      return Promise.resolve(value);
    case 'double-callback':
      return {
        then(resolve: (v: unknown) => void, reject: (r: unknown) => void) {
          resolve(value);
          reject(new Error('second callback'));
          resolve('third callback');
        },
      };
  }
}

/**
 * Records unhandled rejections and uncaught exceptions while `body` runs (and for a few macrotask turns after it,
 * which is when Node reports them).
 */
export async function processFaults(body: () => Promise<void>): Promise<unknown[]> {
  const faults: unknown[] = [];
  const record = (reason: unknown) => faults.push(reason);
  process.on('unhandledRejection', record);
  process.on('uncaughtException', record);
  try {
    await body();
    for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
  } finally {
    process.off('unhandledRejection', record);
    process.off('uncaughtException', record);
  }
  return faults;
}
