import { Test, type TestingModule } from '@nestjs/testing';
import fc from 'fast-check';
import { CacheService, ConcurrencyModule } from 'nestjs-concurrency';

/** Values user code may throw that cannot be turned into a string the usual way. */
const hostile = (): Array<[string, unknown]> => [
  ['a Symbol', Symbol('boom')],
  ['an object without a prototype', Object.create(null)],
  [
    'an object whose toString throws',
    {
      toString() {
        throw new Error('toString throws');
      },
    },
  ],
  [
    'a Proxy whose every trap throws',
    new Proxy(
      {},
      {
        get() {
          throw new Error('get trap');
        },
        getPrototypeOf() {
          throw new Error('getPrototypeOf trap');
        },
      },
    ),
  ],
];

/** A value whose `then` getter throws (as some ORM proxies do): awaiting it rejects with the getter's error. */
const hostileThenable = (error: Error) =>
  Object.defineProperty({}, 'then', {
    get() {
      throw error;
    },
  });

describe('CacheService with hostile values from user code', () => {
  let moduleRef: TestingModule;
  let cache: CacheService;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  beforeEach(async () => {
    process.on('unhandledRejection', onUnhandled);
    moduleRef = await Test.createTestingModule({ imports: [ConcurrencyModule.forRoot()] }).compile();
    await moduleRef.init();
    cache = moduleRef.get(CacheService);
  });

  afterEach(async () => {
    await moduleRef.close();
    process.off('unhandledRejection', onUnhandled);
    expect(unhandled).toEqual([]);
    unhandled.length = 0;
  });

  it.each(hostile())(
    'getOrStore rejects with %s thrown by fn (sync or async), stores nothing, and goes on',
    async (_n, value) => {
      const thrown = await cache
        .getOrStore('k', () => {
          throw value;
        })
        .catch((error: unknown) => ({ error }));
      expect((thrown as { error: unknown }).error).toBe(value);
      const rejected = await cache.getOrStore('k', () => Promise.reject(value)).catch((error: unknown) => ({ error }));
      expect((rejected as { error: unknown }).error).toBe(value);
      expect(await cache.getOrStore('k', () => 'fine')).toBe('fine');
    },
  );

  it.each(hostile())('isolated rejects with %s and releases the key', async (_n, value) => {
    const thrown = await cache
      .isolated('k', () => {
        throw value;
      })
      .catch((error: unknown) => ({ error }));
    expect((thrown as { error: unknown }).error).toBe(value);
    await expect(cache.isolated('k', () => 'next', { timeout: 100 })).resolves.toBe('next');
  });

  it('getOrStore fails with the getter error when fn returns a thenable whose then getter throws', async () => {
    const error = new Error('then getter');
    const waiting = Array.from({ length: 5 }, () => cache.getOrStore('t', () => hostileThenable(error)));
    for (const call of waiting) await expect(call).rejects.toBe(error);
    expect(await cache.get('t')).toBeUndefined();
    expect(await cache.getOrStore('t', () => 'ok')).toBe('ok');
  });

  it('any thrown value fails that call only: the next call for the key computes (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.anything(), fc.boolean(), async (value, async) => {
        const key = `p:${Math.random()}`;
        const outcome = await cache
          .getOrStore(
            key,
            async
              ? () => Promise.reject(value)
              : () => {
                  throw value;
                },
          )
          .then(
            () => 'resolved',
            (error: unknown) => (Object.is(error, value) ? 'same' : 'other'),
          );
        expect(outcome).toBe('same');
        expect(await cache.getOrStore(key, () => 'ok')).toBe('ok');
      }),
      { numRuns: 200 },
    );
  });
});
