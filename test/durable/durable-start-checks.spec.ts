import { Injectable } from '@nestjs/common';
import { DurableSupervisor, SupervisorShutdownError, TaskHandler } from 'nestjs-concurrency';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';
import { bootDurable, uniquePrefix } from './helpers.js';

@Injectable()
class Handlers {
  @TaskHandler('export', { restart: 'temporary' })
  export(): string {
    return 'done';
  }
}

describe.skipIf(!redisAvailable)('DurableSupervisor.startChild() refusals (real redis-server)', () => {
  let server: RedisServer;

  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('refuses an unknown start option, naming it and the known ones, and stores nothing', async () => {
    const { app } = await bootDurable({ connection: server.url, prefix: uniquePrefix(), workers: false }, [Handlers]);
    try {
      const durable = app.get(DurableSupervisor);
      const typo = { idd: 'order-1' } as unknown as { id: string };
      const error = await durable.startChild('export', { n: 1 }, typo).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(TypeError);
      expect((error as Error).message).toMatch(/"idd"/);
      expect((error as Error).message).toMatch(/id.*delay.*priority/);
      expect(await durable.children()).toEqual([]);
    } finally {
      await app.close();
    }
  });

  it('throws SupervisorShutdownError for a start after the application closed', async () => {
    const { app } = await bootDurable({ connection: server.url, prefix: uniquePrefix() }, [Handlers]);
    const durable = app.get(DurableSupervisor);
    await app.close();
    await expect(durable.startChild('export', { n: 1 })).rejects.toBeInstanceOf(SupervisorShutdownError);
    await expect(durable.async('export', { n: 2 })).rejects.toThrow(/shut down/);
  });
});
