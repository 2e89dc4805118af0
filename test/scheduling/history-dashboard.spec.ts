import { type INestApplication, Injectable, Module } from '@nestjs/common';
import { Redis } from 'ioredis';
import { ConcurrencyModule, Interval, JobRegistry, RedisJobLock } from 'nestjs-concurrency';
import { bootstrapApp } from '../e2e/utils/bootstrap-app.js';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';

interface SnapshotJob {
  name: string;
  paused: boolean;
  recent: Array<{ outcome: string; durationMs: number; instance: string; error?: string }>;
}

describe.skipIf(!redisAvailable)(
  'the dashboard shows the cluster: last runs and paused state (real redis-server)',
  () => {
    let server: RedisServer;
    const clients: Redis[] = [];
    const apps: INestApplication[] = [];

    beforeAll(async () => {
      server = await RedisServer.start();
    });
    afterAll(async () => {
      await Promise.all(apps.map((app) => app.close()));
      for (const client of clients) client.disconnect();
      await server.stop();
    });

    async function boot(instance: string, runs: boolean): Promise<string> {
      const client = new Redis(server.url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true });
      client.on('error', () => {});
      await client.connect();
      clients.push(client);
      @Injectable()
      class Jobs {
        @Interval(150, { name: 'sync', lock: true })
        sync() {
          if (Date.now() % 2 === 0) throw new Error('odd luck');
        }
      }
      @Module({
        imports: [
          ConcurrencyModule.forRoot({
            jobs: { lock: new RedisJobLock(client), instance, intervals: runs },
            dashboard: { guard: false },
          }),
        ],
        providers: [Jobs],
      })
      class AppModule {}
      const app = await bootstrapApp('express', AppModule);
      await app.listen(0, '127.0.0.1');
      apps.push(app);
      return `http://127.0.0.1:${(app.getHttpServer().address() as { port: number }).port}/_concurrency`;
    }

    const job = async (base: string): Promise<SnapshotJob> =>
      ((await (await fetch(`${base}/snapshot`)).json()).jobs as SnapshotJob[]).find((j) => j.name === 'sync')!;

    it("lists the cluster's last runs with outcome, duration and instance, and follows a pause made elsewhere", async () => {
      await boot('worker-1', true);
      const other = await boot('worker-2', true);
      await vi.waitFor(async () => expect((await job(other)).recent).toHaveLength(5), { timeout: 10_000 });
      const { recent } = await job(other);
      for (const run of recent) {
        expect(['completed', 'failed']).toContain(run.outcome);
        expect(['worker-1', 'worker-2']).toContain(run.instance);
        expect(run.durationMs).toBeGreaterThanOrEqual(0);
        if (run.outcome === 'failed') expect(run.error).toBe('odd luck');
      }
      // A pause through the registry of instance 1 shows on instance 2's dashboard; its Resume button reaches instance 1.
      apps[0].get(JobRegistry).pause('sync');
      await vi.waitFor(async () => expect((await job(other)).paused).toBe(true), { timeout: 2000 });
      const res = await fetch(`${other}/jobs/sync/resume`, {
        method: 'POST',
        headers: { 'x-concurrency-dashboard': '1' },
      });
      expect(res.status).toBeLessThan(300);
      await vi.waitFor(() => expect(apps[0].get(JobRegistry).get('sync').paused).toBe(false), { timeout: 2000 });
    }, 30_000);
  },
);
