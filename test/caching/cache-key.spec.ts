import fc from 'fast-check';
import { sortQuery } from '../../lib/caching/cache-key.js';

/** Query parameters from a small alphabet, so names repeat often. */
const params = fc.array(fc.tuple(fc.constantFrom('a', 'b', 'tag', 'tag[]', 'ab'), fc.constantFrom('', '1', '2', 'x')), {
  maxLength: 8,
});

const url = (pairs: Array<[string, string]>) => `/search?${pairs.map(([n, v]) => `${n}=${v}`).join('&')}`;

/** Another order of `pairs` that keeps the relative order of each name's values (a random interleaving). */
const interleaving = (pairs: Array<[string, string]>) =>
  fc
    .shuffledSubarray(
      pairs.map((_, i) => i),
      { minLength: pairs.length, maxLength: pairs.length },
    )
    .map((order) => {
      const byName = new Map<string, Array<[string, string]>>();
      for (const pair of pairs) byName.set(pair[0], [...(byName.get(pair[0]) ?? []), pair]);
      // each position in `order` takes the next value of the name that sat there
      return order.map((i) => byName.get(pairs[i][0])!.shift()!);
    });

describe('cache key: sorted query string', () => {
  it('gives one key to every order of distinct parameter names', () => {
    fc.assert(
      fc.property(
        params.chain((pairs) => fc.tuple(fc.constant(pairs), interleaving(pairs))),
        ([pairs, other]) => {
          expect(sortQuery(url(other))).toBe(sortQuery(url(pairs)));
        },
      ),
    );
  });

  it('keeps repeated values in the order the request sent them (?tag=a&tag=b is not ?tag=b&tag=a)', () => {
    expect(sortQuery('/s?tag=a&tag=b')).not.toBe(sortQuery('/s?tag=b&tag=a'));
    expect(sortQuery('/s?z=1&tag=b&a=0&tag=a')).toBe('/s?a=0&tag=b&tag=a&z=1');
    fc.assert(
      fc.property(params, (pairs) => {
        const key = sortQuery(url(pairs));
        const values = (name: string, query: string) =>
          query
            .slice(query.indexOf('?') + 1)
            .split('&')
            .filter((p) => p.slice(0, p.indexOf('=')) === name)
            .map((p) => p.slice(p.indexOf('=') + 1));
        for (const [name] of pairs) {
          expect(values(name, key)).toEqual(pairs.filter(([n]) => n === name).map(([, v]) => v));
        }
      }),
    );
  });

  it('leaves a URL without a query as it is and drops an empty one', () => {
    expect(sortQuery('/items')).toBe('/items');
    expect(sortQuery('/items?')).toBe('/items');
  });
});
