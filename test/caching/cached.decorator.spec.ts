import { Cached, CacheEvict } from 'nestjs-concurrency';

describe('@Cached / @CacheEvict options', () => {
  it('rejects a ttl that is not a positive number of ms, naming the option', () => {
    expect(() => Cached({ ttl: 0 })).toThrow(/"ttl"/);
    expect(() => Cached({ ttl: '5s' as unknown as number })).toThrow(/"ttl": expected a finite number of ms/);
    expect(() => Cached({ ttl: Infinity })).toThrow(/"ttl": expected a finite number of ms > 0 \(never forever\)/);
  });

  it('rejects unknown options and bad vary entries', () => {
    expect(() => Cached({ tll: 5 } as never)).toThrow(/"tll"/);
    expect(() => Cached({ vary: ['users' as never] })).toThrow(/"vary"/);
    expect(() => CacheEvict({ tags: 'items' as never })).toThrow(/"tags"/);
  });

  it('accepts the documented shapes', () => {
    expect(() =>
      Cached({ ttl: 1000, staleWhileRevalidate: 5000, vary: ['query', 'user', 'header:accept-language'], tags: ['a'] }),
    ).not.toThrow();
    expect(() => CacheEvict({ keys: ['/items', () => '/x'], tags: ['items'] })).not.toThrow();
  });
});
