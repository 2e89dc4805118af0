import type { INestApplication } from '@nestjs/common';
import { Injectable } from '@nestjs/common';
import { Redis } from 'ioredis';
import { Cron, InMemoryJobLock, type JobLock, JobRegistry, JobRunningError, RedisJobLock } from 'nestjs-concurrency';
import { setTimeout as delay } from 'node:timers/promises';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';
import { bootJobs } from './utils/boot.js';

/** A run on `instance` holds until `release()`: runs started while held are recorded with `held: true`. */
class Runs {
  readonly started: Array<{ instance: number; held: boolean }> = [];
  private gate: Promise<void> | undefined;
  private open?: () => void;
  hold(): void {
    this.gate = new Promise((resolve) => (this.open = resolve));
  }
  release(): void {
    this.open?.();
    this.gate = undefined;
  }
  async run(instance: number): Promise<void> {
    this.started.push({ instance, held: this.gate !== undefined });
    await this.gate;
  }
}

/** Two instances of one app, each with its own lock client (`lockFor(i)`), running one locked cron job. */
async function bootTwo(expression: string, runs: Runs, lockFor: (i: number) => JobLock): Promise<INestApplication[]> {
  const apps: INestApplication[] = [];
  for (let instance = 0; instance < 2; instance++) {
    @Injectable()
    class Report {
      @Cron(expression, { name: 'report', lock: true })
      build() {
        return runs.run(instance);
      }
    }
    apps.push(await bootJobs([Report], { jobs: { lock: lockFor(instance) } }));
  }
  return apps;
}

function suite(kind: string, locks: () => Promise<{ lockFor: (i: number) => JobLock; close: () => Promise<void> }>) {
  describe(`trigger() with lock and overlap 'skip' takes the running lease (${kind})`, () => {
    let apps: INestApplication[] = [];
    let close = async () => {};
    let runs: Runs;

    afterEach(async () => {
      runs.release();
      await Promise.all(apps.map((app) => app.close()));
      apps = [];
      await close();
    });

    it('rejects a trigger() on B with JobRunningError while A runs the job', async () => {
      runs = new Runs();
      const made = await locks();
      close = made.close;
      apps = await bootTwo('0 0 1 1 *', runs, made.lockFor);
      runs.hold();
      const first = apps[0].get(JobRegistry).trigger('report');
      await vi.waitFor(() => expect(runs.started).toHaveLength(1));
      await expect(apps[1].get(JobRegistry).trigger('report')).rejects.toBeInstanceOf(JobRunningError);
      expect(apps[1].get(JobRegistry).get('report').skipped).toBe(1);
      expect(runs.started).toEqual([{ instance: 0, held: true }]);
      runs.release();
      await first;
      // Released at the run's end: the job may run anywhere again.
      await apps[1].get(JobRegistry).trigger('report');
      expect(runs.started.at(-1)).toEqual({ instance: 1, held: false });
    });

    it("skips A's ticks while B's triggered run goes", async () => {
      runs = new Runs();
      const made = await locks();
      close = made.close;
      apps = await bootTwo('* * * * * *', runs, made.lockFor);
      // Start just after a second's tick has settled, so no tick holds the running lease as B triggers.
      await delay(1_100 - (Date.now() % 1_000));
      runs.hold();
      const triggered = apps[1].get(JobRegistry).trigger('report');
      const skippedBefore = apps[0].get(JobRegistry).get('report').skipped;
      await delay(2_200);
      expect(runs.started.filter((run) => run.held)).toEqual([{ instance: 1, held: true }]);
      expect(apps[0].get(JobRegistry).get('report').skipped).toBeGreaterThan(skippedBefore);
      runs.release();
      await triggered;
    });
  });
}

suite('InMemoryJobLock shared by both instances', async () => {
  const lock = new InMemoryJobLock();
  return { lockFor: () => lock, close: async () => {} };
});

describe.skipIf(!redisAvailable)('on a real redis-server', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => {
    await server.stop();
  });
  suite('RedisJobLock', async () => {
    const clients = [0, 1].map(() => {
      const client = new Redis(server.url, { maxRetriesPerRequest: 1 });
      client.on('error', () => {});
      return client;
    });
    return {
      lockFor: (i) => new RedisJobLock(clients[i], { timeout: 300 }),
      close: async () => {
        for (const client of clients) client.disconnect();
      },
    };
  });
});

describe("trigger() with lock and overlap 'skip' when the lock store fails", () => {
  it('rejects with the lock error, counts it, and does not run', async () => {
    const failure = new Error('lock store down');
    const runs = new Runs();
    const apps = await bootTwo('0 0 1 1 *', runs, () => ({ acquire: () => Promise.reject(failure) }));
    try {
      await expect(apps[0].get(JobRegistry).trigger('report')).rejects.toBe(failure);
      expect(apps[0].get(JobRegistry).get('report').lockFailures).toBe(1);
      expect(runs.started).toEqual([]);
    } finally {
      await Promise.all(apps.map((app) => app.close()));
    }
  });
});
