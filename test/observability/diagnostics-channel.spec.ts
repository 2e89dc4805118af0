import { Injectable, Logger, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import {
  type CacheMessage,
  CacheService,
  ConcurrencyModule,
  CONCURRENCY_CHANNELS,
  FanOut,
  type FanOutMessage,
  Interval,
  type JobMessage,
  JobRegistry,
  type SupervisorMessage,
  TaskSupervisor,
} from 'nestjs-concurrency';

/** Subscribes to one channel for the length of a test; `stop()` unsubscribes. */
function listen<T>(name: string): { messages: T[]; stop(): void } {
  const messages: T[] = [];
  const onMessage = (message: unknown) => messages.push(message as T);
  subscribe(name, onMessage);
  return { messages, stop: () => unsubscribe(name, onMessage) };
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('diagnostics_channel: nestjs-concurrency:supervisor', () => {
  afterEach(() => vi.restoreAllMocks());
  it('publishes one message per lifecycle event, the same shape as supervisor.events', async () => {
    vi.spyOn(Logger.prototype, 'error').mockImplementation(() => {});
    const sup = new TaskSupervisor('dc');
    const channel = listen<SupervisorMessage>(CONCURRENCY_CHANNELS.supervisor);
    try {
      sup.startChild(() => 'ok', { name: 'fine' });
      sup.startChild(() => {
        throw new Error('boom');
      });
      await sup.shutdown();
    } finally {
      channel.stop();
    }
    const mine = channel.messages.filter((m) => m.supervisor === 'dc');
    expect(mine.map((m) => [m.type, m.childId])).toEqual([
      ['started', 'dc-1'],
      ['completed', 'dc-1'],
      ['started', 'dc-2'],
      ['failed', 'dc-2'],
    ]);
    expect(mine[1]).toMatchObject({ name: 'fine', attempt: 1 });
    expect(typeof mine[1].durationMs).toBe('number');
    expect((mine[3].error as Error).message).toBe('boom');
  });

  it('builds no message while nobody subscribes, and counts children all the same', async () => {
    const sup = new TaskSupervisor('quiet');
    const channel = listen<SupervisorMessage>(CONCURRENCY_CHANNELS.supervisor);
    channel.stop();
    for (let i = 0; i < 100; i++) sup.startChild(() => undefined);
    await sup.shutdown();
    expect(channel.messages).toEqual([]);
    expect(sup.counts).toMatchObject({ started: 100, completed: 100, failed: 0 });
  });
});

describe('diagnostics_channel: jobs, fan-out and cache', () => {
  @Injectable()
  class Jobs {
    calls = 0;
    @Interval(60_000, { name: 'flaky' })
    flaky() {
      if (++this.calls === 2) throw new Error('second run fails');
    }
  }

  @Module({ imports: [ConcurrencyModule.forRoot()], providers: [Jobs] })
  class AppModule {}

  it('publishes a job run start and end, with the failure and its duration', async () => {
    const app = await NestFactory.createApplicationContext(AppModule, { logger: false, abortOnError: false });
    const channel = listen<JobMessage>(CONCURRENCY_CHANNELS.job);
    try {
      const jobs = app.get(JobRegistry);
      await jobs.trigger('flaky');
      await expect(jobs.trigger('flaky')).rejects.toThrow('second run fails');
    } finally {
      channel.stop();
      await app.close();
    }
    const mine = channel.messages.filter((m) => m.job === 'flaky');
    expect(mine.map((m) => m.type)).toEqual(['started', 'completed', 'started', 'failed']);
    expect(mine[3]).toMatchObject({
      kind: 'interval',
      error: expect.objectContaining({ message: 'second run fails' }),
    });
    expect(mine[3].durationMs).toBeGreaterThanOrEqual(0);
  });

  it('publishes a skipped tick with its reason', async () => {
    @Injectable()
    class Slow {
      release!: () => void;
      @Interval(60_000, { name: 'slow' })
      run() {
        return new Promise<void>((resolve) => (this.release = resolve));
      }
    }
    @Module({ imports: [ConcurrencyModule.forRoot()], providers: [Slow] })
    class SlowModule {}
    const app = await NestFactory.createApplicationContext(SlowModule, { logger: false, abortOnError: false });
    const channel = listen<JobMessage>(CONCURRENCY_CHANNELS.job);
    try {
      const running = app.get(JobRegistry).trigger('slow');
      await expect(app.get(JobRegistry).trigger('slow')).rejects.toThrow();
      app.get(Slow).release();
      await running;
    } finally {
      channel.stop();
      await app.close();
    }
    expect(channel.messages.filter((m) => m.job === 'slow').map((m) => [m.type, m.reason])).toEqual([
      ['started', undefined],
      ['skipped', 'overlap'],
      ['completed', undefined],
    ]);
  });

  it('publishes a fan-out call start, each failed or timed-out item, and the call end with its counts', async () => {
    const app = await NestFactory.createApplicationContext(AppModule, { logger: false, abortOnError: false });
    const channel = listen<FanOutMessage>(CONCURRENCY_CHANNELS.fanOut);
    try {
      await app.get(FanOut).settle(
        [1, 2, 3, 4],
        (n, ctx) => {
          if (n === 2) throw new Error('two');
          if (n === 3) return new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
          return n;
        },
        { timeout: 50 },
      );
    } finally {
      channel.stop();
      await app.close();
    }
    const types = channel.messages.map((m) => m.type);
    expect(types).toEqual(['call-started', 'item-failed', 'item-timeout', 'call-ended']);
    const call = channel.messages[0].call;
    expect(channel.messages.every((m) => m.call === call)).toBe(true);
    expect(channel.messages[1]).toMatchObject({ index: 1, error: expect.objectContaining({ message: 'two' }) });
    expect(channel.messages[2]).toMatchObject({ index: 2 });
    expect(channel.messages[3]).toMatchObject({ items: 4, failures: 2, timeouts: 1 });
  });

  it('publishes each cache miss, hit and coalesced read, without the key', async () => {
    const app = await NestFactory.createApplicationContext(AppModule, { logger: false, abortOnError: false });
    const channel = listen<CacheMessage>(CONCURRENCY_CHANNELS.cache);
    try {
      const cache = app.get(CacheService);
      let release!: (v: string) => void;
      const slow = new Promise<string>((resolve) => (release = resolve));
      const first = cache.getOrStore('user:42', () => slow);
      const second = cache.getOrStore('user:42', () => 'never');
      release('value');
      await Promise.all([first, second]);
      await cache.getOrStore('user:42', () => 'never');
      await until(() => channel.messages.length >= 3, 'three cache messages');
    } finally {
      channel.stop();
      await app.close();
    }
    expect(channel.messages.map((m) => m.type).sort()).toEqual(['coalesced', 'hit', 'miss']);
    expect(JSON.stringify(channel.messages)).not.toContain('user:42');
  });
});
