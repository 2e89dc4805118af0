import { Injectable } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import { Cached, ConcurrencyModule } from 'nestjs-concurrency';

@Injectable()
class Echo {
  runs = 0;

  @Cached({ ttl: 60_000 })
  async echo(...args: unknown[]): Promise<number> {
    void args;
    return ++this.runs;
  }
}

@Injectable()
class Keyed {
  runs = 0;
  mode: 'throw' | 'empty' | 'object' = 'throw';

  @Cached({
    key: (id: string) => {
      void id;
      throw new Error('no key for you');
    },
  })
  async throwing(id: string): Promise<string> {
    this.runs++;
    return id;
  }

  @Cached({ key: (id: string) => (id === 'empty' ? '' : (id as unknown as { n: number } as unknown as string)) })
  async odd(id: unknown): Promise<unknown> {
    this.runs++;
    return id;
  }
}

class Dto {
  constructor(readonly page: number) {}
}
class OtherDto {
  constructor(readonly page: number) {}
}

describe('@Cached provider methods: hostile arguments', () => {
  let moduleRef: TestingModule;
  let echo: Echo;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  beforeAll(async () => {
    process.on('unhandledRejection', onUnhandled);
    moduleRef = await Test.createTestingModule({
      imports: [ConcurrencyModule.forRoot()],
      providers: [Echo, Keyed],
    }).compile();
    await moduleRef.init();
    echo = moduleRef.get(Echo);
  });

  afterAll(async () => {
    await moduleRef.close();
    process.off('unhandledRejection', onUnhandled);
    expect(unhandled).toEqual([]);
  });

  /** Whether two argument lists share one cache entry. */
  async function shared(a: unknown[], b: unknown[]): Promise<boolean> {
    return (await echo.echo(...a)) === (await echo.echo(...b));
  }

  it.each([
    ['a string and a number', ['1'], [1]],
    ['0 and -0', [0], [-0]],
    ['null and undefined', [null], [undefined]],
    ['no argument and undefined', [], [undefined]],
    ['a missing key and an undefined one', [{}], [{ a: undefined }]],
    ['nestings', [[1, [2]]], [[[1], 2]]],
    ['a key with a quote', [{ 'a":1,"b': 2 }], [{ a: 1, b: 2 }]],
    ['a Date and its time', [new Date(5)], [5]],
    ['a bigint and a number', [1n], [1]],
    ['a Buffer and a Uint8Array', [Buffer.from('ab')], [new Uint8Array([97, 98])]],
    ['two classes with the same data', [new Dto(1)], [new OtherDto(1)]],
    ['a class instance and a plain object', [new Dto(1)], [{ page: 1 }]],
    ['a Map and an object', [new Map([['a', 1]])], [{ a: 1 }]],
    ['a Set and an array', [new Set([1, 2])], [[1, 2]]],
    ['NaN and null', [NaN], [null]],
  ])('never lets %s share a key', async (_, a, b) => {
    expect(await shared(a, b)).toBe(false);
  });

  it.each([
    ['objects in another key order', [{ a: 1, b: { c: 2, d: 3 } }], [{ b: { d: 3, c: 2 }, a: 1 }]],
    [
      'Maps in another insertion order',
      [
        new Map([
          ['x', 1],
          ['y', 2],
        ]),
      ],
      [
        new Map([
          ['y', 2],
          ['x', 1],
        ]),
      ],
    ],
    ['Sets in another insertion order', [new Set(['x', 'y'])], [new Set(['y', 'x'])]],
    ['equal Dates', [new Date(7)], [new Date(7)]],
    ['equal class instances (a DTO)', [new Dto(2)], [new Dto(2)]],
    [
      'a shared reference (not a cycle)',
      [
        (() => {
          const o = { n: 1 };
          return [o, o];
        })(),
      ],
      [[{ n: 1 }, { n: 1 }]],
    ],
  ])('gives %s one key', async (_, a, b) => {
    expect(await shared(a, b)).toBe(true);
  });

  it.each([
    [
      'a cycle',
      () => {
        const o: Record<string, unknown> = {};
        o.self = o;
        return [o];
      },
      /args\[0\]\.self is a cycle/,
    ],
    [
      'a cycle through a Map',
      () => {
        const m = new Map<string, unknown>();
        m.set('m', m);
        return [m];
      },
      /is a cycle/,
    ],
    ['a function', () => [{ cb: () => 1 }], /args\[0\]\.cb is a function/],
    ['a symbol', () => [Symbol('s')], /args\[0\] is a symbol/],
    ['a symbol-keyed property', () => [{ [Symbol('k')]: 1 }], /symbol-keyed properties/],
    [
      'an instance without data of its own',
      () => [new AbortController().signal],
      /args\[0\] is an AbortSignal with no data/,
    ],
    ['a Promise', () => [Promise.resolve(1)], /is a Promise with no data/],
    ['a huge object', () => [{ blob: 'x'.repeat(300 * 1024) }], /larger than 262144 characters/],
    ['a huge array', () => [Array.from({ length: 200_000 }, (_, i) => i)], /larger than 262144 characters/],
    [
      'deep nesting',
      () => {
        let o: unknown = 1;
        for (let i = 0; i < 100; i++) o = [o];
        return [o];
      },
      /nested deeper than 64 levels/,
    ],
    [
      'a getter that throws',
      () => [
        Object.defineProperty({}, 'x', {
          enumerable: true,
          get() {
            throw new Error('boom');
          },
        }),
      ],
      /cannot be read \(boom\)/,
    ],
    [
      'a revoked Proxy',
      () => {
        const p = Proxy.revocable({}, {});
        p.revoke();
        return [p.proxy];
      },
      /cannot be read/,
    ],
  ])('rejects %s with an error naming the method, the argument and the way out', async (_, make, reason) => {
    const runs = echo.runs;
    const error = (await echo.echo(...(make() as unknown[])).catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toMatch(/^@Cached Echo\.echo: cannot build a cache key from the arguments: /);
    expect(error.message).toMatch(reason);
    expect(error.message).toContain('key: (...args) => string');
    expect(echo.runs).toBe(runs); // the method did not run
  });

  it('rejects a call whose key function throws with its error, or returns no non-empty string, without running the method', async () => {
    const keyed = moduleRef.get(Keyed);
    await expect(keyed.throwing('a')).rejects.toThrow('no key for you');
    await expect(keyed.odd('empty')).rejects.toThrow(
      '@Cached Keyed.odd: the key function returned ""; expected a non-empty string.',
    );
    await expect(keyed.odd({ n: 1 } as never)).rejects.toThrow('the key function returned an object');
    expect(keyed.runs).toBe(0);
  });
});
