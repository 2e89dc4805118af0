import { MAX_KEY_DEPTH, stableHash, UnkeyableValue } from '../../lib/caching/handlers/stable-hash.js';

const h = (v: unknown) => stableHash(v, 'data');

describe('the key of a message or query: a stable hash of its data', () => {
  it('is the same for the same content in another key order, Map or Set insertion order, or without a prototype', () => {
    expect(h({ a: 1, b: { c: [1, 2], d: 'x' } })).toBe(h({ b: { d: 'x', c: [1, 2] }, a: 1 }));
    expect(
      h(
        new Map([
          ['a', 1],
          ['b', 2],
        ]),
      ),
    ).toBe(
      h(
        new Map([
          ['b', 2],
          ['a', 1],
        ]),
      ),
    );
    expect(h(new Set([1, 'a', { x: 1 }]))).toBe(h(new Set([{ x: 1 }, 'a', 1])));
    expect(h(Object.assign(Object.create(null) as object, { id: 1 }))).toBe(h({ id: 1 }));
  });

  it('differs for the same text in another type or shape (no collisions)', () => {
    const values: unknown[] = [
      1,
      '1',
      1n,
      true,
      'true',
      null,
      'null',
      undefined,
      {},
      [],
      '',
      new Map(),
      new Set(),
      [undefined],
      [null],
      { a: undefined },
      0,
      -0,
      NaN,
      'NaN',
      Infinity,
      new Date(0),
      new Date(0).toISOString(),
      0n,
      Buffer.from('ab'),
      'ab',
      new Uint8Array([97, 98]),
      /a/,
      '/a/',
      ['a', 'b'],
      ['a,b'],
      { 'a,b': 1 },
      { a: { b: 1 } },
      { 'a.b': 1 },
      { a: '1' },
      { a: 1 },
      [[1], 2],
      [1, [2]],
      new Map([[1, 2]]),
      { 1: 2 },
      new Set([1]),
      [1],
      's"',
      's\\"',
    ];
    const hashes = values.map(h);
    expect(new Set(hashes).size).toBe(values.length);
  });

  it('is a fixed-length key however large the data', () => {
    const huge = { items: Array.from({ length: 200_000 }, (_, i) => ({ i, name: `item ${i}` })) };
    expect(h(huge)).toMatch(/^[\w-]{43}$/);
    expect(h('x'.repeat(5_000_000))).toMatch(/^[\w-]{43}$/);
  });

  it('refuses what cannot be keyed with an error naming the part', () => {
    const cycle: Record<string, unknown> = { a: 1 };
    cycle.self = cycle;
    expect(() => h(cycle)).toThrow(new UnkeyableValue('data.self', 'is a cycle (it contains itself)'));
    const mapCycle = new Map<string, unknown>();
    mapCycle.set('m', mapCycle);
    expect(() => h(mapCycle)).toThrow(UnkeyableValue);
    expect(() => h({ fn: () => 1 })).toThrow('data.fn is a function');
    expect(() => h([1, Symbol('s')])).toThrow('data[1] is a symbol');
    expect(() => h({ p: Promise.resolve(1) })).toThrow('data.p is a Promise');
    expect(() => h({ o: { subscribe: () => undefined } })).toThrow('data.o is an Observable or a thenable');
    let deep: unknown = 1;
    for (let i = 0; i < MAX_KEY_DEPTH + 5; i++) deep = [deep];
    expect(() => h(deep)).toThrow(/is nested deeper than 256 levels/);
    const trap = new Proxy(
      {},
      {
        ownKeys: () => {
          throw new Error('trap');
        },
      },
    );
    expect(() => h({ trap })).toThrow('data cannot be read (trap)');
    const getter = {
      get x(): number {
        throw new Error('getter');
      },
    };
    expect(() => h(getter)).toThrow(UnkeyableValue);
  });

  it('reads own enumerable data, never toJSON', () => {
    const a = { id: 1, toJSON: undefined as unknown };
    const withToJson = { id: 1, toJSON: () => ({ id: 2 }) };
    expect(() => h(withToJson)).toThrow('data.toJSON is a function');
    expect(h({ id: 1 })).not.toBe(h(a));
  });
});
