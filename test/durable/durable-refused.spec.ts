import { ConcurrencyHealthIndicator, DurableSupervisor, DurableUnavailableError } from 'nestjs-concurrency';
import { freePort, redisAvailable } from '../utils/redis-server.js';
import { bootDurable, uniquePrefix } from './helpers.js';

describe.skipIf(!redisAvailable)('DurableSupervisor with a refused connection (nothing listens on the port)', () => {
  it('says the connection was refused and nothing was sent, not that Redis did not answer in time', async () => {
    const port = await freePort(); // nothing listens there: every connection is refused at once
    const { app } = await bootDurable({
      connection: `redis://127.0.0.1:${port}`,
      prefix: uniquePrefix(),
      workers: false,
    });
    try {
      const durable = app.get(DurableSupervisor);
      const error = await durable.startChild('export', { n: 1 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(DurableUnavailableError);
      const message = (error as Error).message;
      expect(message).not.toMatch(/did not answer|may have been stored|timeout/);
      expect(message).toMatch(/not stored/);
      expect(message).toMatch(/could not reach Redis/);
      const health = await app.get(ConcurrencyHealthIndicator).check();
      const part = health.concurrency.durable as { status: string; message: string };
      expect(part.status).toBe('down');
      expect(part.message).not.toMatch(/did not answer|timeout/);
      expect(part.message).toMatch(/could not reach Redis/);
    } finally {
      await app.close();
    }
  });
});
