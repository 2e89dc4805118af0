import { Test } from '@nestjs/testing';
import { Keyv } from 'keyv';
import { CacheService, ConcurrencyModule } from 'nestjs-concurrency';
import { jsonChanges } from '../../lib/caching/store-admission.js';
import { RecordingLogger } from '../fixtures/cache-logger.js';

describe('values written to an L2 store', () => {
  it.each([
    [new Date(0), 'value is a Date'],
    [{ list: [1, { when: new Date(0) }] }, 'value.list[1].when is a Date'],
    [{ ids: new Set([1]) }, 'value.ids is a Set'],
    [{ byId: new Map() }, 'value.byId is a Map'],
    [{ n: 1n }, 'value.n is a bigint'],
    [{ 'a b': undefined }, 'value["a b"] is undefined'],
    [[Number.NaN], 'value[0] is NaN'],
    [{ z: -0 }, 'value.z is -0'],
    [new (class Point {})(), 'value is a Point'],
  ])('finds what JSON would change (%#)', (value, found) => {
    expect(jsonChanges(value)).toBe(found);
  });

  it('finds a cycle, and nothing in plain JSON data, Buffers or shared (not cyclic) references', () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    expect(jsonChanges(cyclic)).toBe('value.self is a cycle (it contains itself)');
    const shared = { x: 1 };
    expect(jsonChanges({ a: shared, b: [shared], s: ':colon', n: null, buf: Buffer.from('x') })).toBeUndefined();
    expect(jsonChanges(Object.create(null))).toBeUndefined();
  });

  it('keeps a value JSON would change out of the store, returns it as it is and says why', async () => {
    const store = new Keyv();
    const logger = new RecordingLogger();
    const moduleRef = await Test.createTestingModule({
      imports: [ConcurrencyModule.forRoot({ cache: { stores: [store] } })],
    }).compile();
    moduleRef.useLogger(logger);
    await moduleRef.init();
    try {
      const cache = moduleRef.get(CacheService);
      const value = { at: new Date(0) };
      expect(await cache.getOrStore('dated', () => value, 60_000)).toBe(value);
      expect(await cache.getOrStore('dated', () => ({ at: new Date(1) }), 60_000)).toBe(value); // from memory
      expect(await store.get('dated')).toBeUndefined();
      expect(logger.problems().join('\n')).toMatch(/Cache key "dated" is not written to store #1: value\.at is a Date/);
      expect(cache.stats().errors).toBe(1);
      // plain JSON data is written
      await cache.set('plain', { at: '1970-01-01T00:00:00.000Z' }, 60_000);
      expect(await store.get('plain')).toEqual({ at: '1970-01-01T00:00:00.000Z' });
    } finally {
      await moduleRef.close();
    }
  });

  it('refuses a maxValueSize that is not a whole number of bytes > 0, naming the option', async () => {
    for (const maxValueSize of [0, 1.5, -1, '1mb']) {
      await expect(
        Test.createTestingModule({
          imports: [ConcurrencyModule.forRoot({ cache: { maxValueSize: maxValueSize as number } })],
        }).compile(),
      ).rejects.toThrow(/cache\.maxValueSize/);
    }
  });
});
