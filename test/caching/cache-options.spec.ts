import { Test } from '@nestjs/testing';
import { Keyv } from 'keyv';
import { CacheService, ConcurrencyModule } from 'nestjs-concurrency';

async function boot(stores: unknown) {
  const moduleRef = await Test.createTestingModule({
    imports: [ConcurrencyModule.forRoot({ cache: { stores: stores as Keyv } })],
  }).compile();
  await moduleRef.init();
  return moduleRef;
}

describe('cache.stores at boot', () => {
  it('refuses a Keyv-like object without on/off, naming the option', async () => {
    const keyvLike = {
      opts: {},
      hooks: {},
      stats: {},
      get: async () => undefined,
      set: async () => true,
      delete: async () => true,
    };
    await expect(boot(keyvLike)).rejects.toThrow(/"cache\.stores": expected a Keyv instance with on\(\) and off\(\)/);
    await expect(boot([new Keyv(), keyvLike])).rejects.toThrow(/"cache\.stores\[1\]"/);
  });

  it('refuses what is not a store, naming the option', async () => {
    await expect(boot(['redis://localhost'])).rejects.toThrow(
      /"cache\.stores\[0\]": expected a Keyv instance or a Keyv store adapter/,
    );
  });

  it('wraps a bare store adapter without events (a Map) in a Keyv and uses it as the L2', async () => {
    const map = new Map<string, unknown>();
    const moduleRef = await boot(map);
    try {
      const cache = moduleRef.get(CacheService);
      await cache.set('k', { v: 1 }, 5000);
      expect(map.size).toBe(1);
      cache.memory.clear(); // the next read must come from the L2
      expect(await cache.get('k')).toEqual({ v: 1 });
      expect(cache.stats().errors).toBe(0);
    } finally {
      await moduleRef.close();
    }
  });
});
