import { Injectable } from '@nestjs/common';
import { DurableSupervisor, TaskHandler } from 'nestjs-concurrency';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';
import { bootDurable, type DurableApp, uniquePrefix } from './helpers.js';

let workerRuns = 0;

/** The starting instance's view of the task: no restarts. */
@Injectable()
class StarterHandlers {
  @TaskHandler('flaky', { restart: 'temporary' })
  flaky() {
    throw new Error('the starter never runs it (workers: false)');
  }
}

/** The worker's view of the same task name: three restarts. */
@Injectable()
class WorkerHandlers {
  @TaskHandler('flaky', { maxRestarts: 3, backoff: 10 })
  flaky() {
    workerRuns++;
    throw new Error(`flaky failed (run ${workerRuns})`);
  }
}

describe.skipIf(!redisAvailable)('durable tasks: the worker decides when a task has failed for good', () => {
  let server: RedisServer;
  const apps: DurableApp[] = [];

  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => {
    await server.stop();
  });
  afterEach(async () => {
    await Promise.all(apps.splice(0).map(({ app }) => app.close()));
  });

  it("applies the running instance's restart policy, not the starting instance's", async () => {
    workerRuns = 0;
    const prefix = uniquePrefix();
    const starter = await bootDurable({ connection: server.url, prefix, workers: false }, [StarterHandlers]);
    apps.push(starter);
    const worker = await bootDurable({ connection: server.url, prefix }, [WorkerHandlers]);
    apps.push(worker);

    const task = await starter.app.get(DurableSupervisor).async('flaky', {});
    await expect(task.await(20_000)).rejects.toThrow('flaky failed (run 4)');
    // One run and three restarts, as the worker's handler says; the starter's 'temporary' does not cap it.
    expect(workerRuns).toBe(4);
  });
});
