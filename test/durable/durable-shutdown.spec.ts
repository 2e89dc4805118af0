import { Injectable } from '@nestjs/common';
import { type DurableTaskContext, DurableSupervisor, TaskAbortedError, TaskHandler } from 'nestjs-concurrency';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';
import { bootDurable, type DurableApp, uniquePrefix } from './helpers.js';

interface Run {
  instance: string;
  id: string;
  attempt: number;
  abortReason?: unknown;
  finished?: boolean;
}
const runs: Run[] = [];

function handlersFor(instance: string) {
  @Injectable()
  class Handlers {
    /** Works for payload.ms, honouring its signal (so a drained shutdown can cut it short). */
    @TaskHandler('work', { maxRestarts: 0 })
    async work(payload: { ms: number }, ctx: DurableTaskContext) {
      const run: Run = { instance, id: ctx.id, attempt: ctx.attempt };
      runs.push(run);
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, payload.ms);
        ctx.signal.addEventListener('abort', () => {
          run.abortReason = ctx.signal.reason;
          clearTimeout(timer);
          reject(ctx.signal.reason);
        });
      });
      run.finished = true;
      return instance;
    }

    /** Ignores its signal: shutdown must not wait for it past shutdownTimeout. */
    @TaskHandler('stubborn', { maxRestarts: 0 })
    async stubborn(_payload: unknown, ctx: DurableTaskContext) {
      runs.push({ instance, id: ctx.id, attempt: ctx.attempt });
      if (instance === 'first') await new Promise((resolve) => setTimeout(resolve, 60_000).unref());
      return instance;
    }
  }
  return Handlers;
}

describe.skipIf(!redisAvailable)('durable: app.close() drains, then hands unfinished attempts back', () => {
  let server: RedisServer;
  let prefix: string;
  let api: DurableApp;
  const apps: DurableApp[] = [];

  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(async () => {
    await server.stop();
  });
  beforeEach(async () => {
    runs.length = 0;
    prefix = uniquePrefix();
    api = await bootDurable({ connection: server.url, prefix, workers: false });
  });
  afterEach(async () => {
    await Promise.all([api, ...apps.splice(0)].map(({ app }) => app.close()));
  });

  const worker = async (instance: string, shutdownTimeout: number) => {
    const booted = await bootDurable(
      { connection: server.url, prefix, stalledTimeout: 60_000 },
      [handlersFor(instance)],
      {
        shutdownTimeout,
      },
    );
    apps.push(booted);
    return booted;
  };

  it('lets a running handler finish when it ends within shutdownTimeout', async () => {
    const first = await worker('first', 5000);
    const task = await api.app.get(DurableSupervisor).async('work', { ms: 400 });
    await vi.waitFor(() => expect(runs).toHaveLength(1), { timeout: 10_000 });
    await first.app.close();
    apps.splice(apps.indexOf(first), 1);
    expect(runs).toEqual([{ instance: 'first', id: task.id, attempt: 1, finished: true }]);
    expect(await task.await(5000)).toBe('first');
  });

  it('aborts a handler still running at shutdownTimeout and hands its attempt back: another instance runs it as attempt 1', async () => {
    const first = await worker('first', 300);
    const task = await api.app.get(DurableSupervisor).async('work', { ms: 30_000 });
    await vi.waitFor(() => expect(runs).toHaveLength(1), { timeout: 10_000 });
    const closing = Date.now();
    await first.app.close();
    apps.splice(apps.indexOf(first), 1);
    expect(Date.now() - closing).toBeLessThan(5000);
    expect(runs[0].abortReason).toBeInstanceOf(TaskAbortedError);
    expect(first.logger.text('warn')).toContain('handed back to the queue');
    // Back in the queue, not failed (maxRestarts: 0 would have made a failure final).
    const children = await api.app.get(DurableSupervisor).children();
    expect(children).toEqual([expect.objectContaining({ id: task.id, status: 'waiting', attempt: 1 })]);

    await worker('second', 300);
    await vi.waitFor(() => expect(runs.filter((r) => r.instance === 'second').map((r) => r.id)).toContain(task.id), {
      timeout: 10_000,
    });
    expect(runs.find((r) => r.instance === 'second' && r.id === task.id)?.attempt).toBe(1);
  }, 60_000);

  it('does not wait for a handler that ignores its signal past shutdownTimeout', async () => {
    const first = await worker('first', 300);
    const task = await api.app.get(DurableSupervisor).async('stubborn', null);
    await vi.waitFor(() => expect(runs).toHaveLength(1), { timeout: 10_000 });
    const closing = Date.now();
    await first.app.close();
    apps.splice(apps.indexOf(first), 1);
    expect(Date.now() - closing).toBeLessThan(5000);
    await worker('second', 5000);
    expect(await task.await(10_000)).toBe('second');
    expect(runs.map((r) => `${r.instance}:${r.attempt}`)).toEqual(['first:1', 'second:1']);
  }, 60_000);
});
