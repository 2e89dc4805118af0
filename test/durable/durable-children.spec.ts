import { DurableSupervisor } from 'nestjs-concurrency';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';
import { bootDurable, uniquePrefix } from './helpers.js';

describe.skipIf(!redisAvailable)('DurableSupervisor.children() with large payloads (real redis-server)', () => {
  let server: RedisServer;

  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('lists 1,000 waiting tasks of 100 KB each without reading their payloads', async () => {
    // No workers: the tasks stay waiting. Reading 100 MB of payloads does not fit in storeTimeout on this machine.
    const { app } = await bootDurable({ connection: server.url, prefix: uniquePrefix(), workers: false });
    try {
      const durable = app.get(DurableSupervisor);
      const payload = { blob: 'x'.repeat(100_000) };
      const ids = new Set<string>();
      for (let batch = 0; batch < 20; batch++) {
        const refs = await Promise.all(Array.from({ length: 50 }, () => durable.startChild('export', payload)));
        for (const ref of refs) ids.add(ref.id);
      }
      const started = Date.now();
      const children = await durable.children();
      const took = Date.now() - started;
      expect(children).toHaveLength(1000);
      expect(new Set(children.map((child) => child.id))).toEqual(ids);
      expect(
        children.every((child) => child.task === 'export' && child.status === 'waiting' && child.attempt === 1),
      ).toBe(true);
      // The default storeTimeout is 2000 ms: well within it even on a loaded machine.
      expect(took).toBeLessThan(1500);
    } finally {
      await app.close();
    }
  }, 120_000);
});
