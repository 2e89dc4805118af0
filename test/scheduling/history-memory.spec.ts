import { Injectable } from '@nestjs/common';
import { Interval, type JobContext, JobRegistry, InvalidJobError, UnknownJobError } from 'nestjs-concurrency';
import { bootJobs, closeFaked } from './utils/boot.js';

describe('run history on one instance (fake timers)', () => {
  beforeEach(() => vi.useFakeTimers({ now: new Date('2026-01-01T00:00:00Z') }));
  afterEach(() => vi.useRealTimers());

  @Injectable()
  class Work {
    calls = 0;
    @Interval(1000, { name: 'work', timeout: 300 })
    async run(ctx: JobContext) {
      const n = ++this.calls;
      if (n % 3 === 2) throw new Error(`boom ${n}`);
      if (n % 3 === 0) await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
      else await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it('keeps every outcome, newest first, with times, duration and instance', async () => {
    const app = await bootJobs([Work], { jobs: { instance: 'node-a' } });
    await vi.advanceTimersByTimeAsync(3500);
    const runs = await app.get(JobRegistry).history('work');
    expect(runs.map((r) => r.outcome)).toEqual(['timeout', 'failed', 'completed']);
    expect(runs.map((r) => r.scheduledAt.toISOString())).toEqual([
      '2026-01-01T00:00:03.000Z',
      '2026-01-01T00:00:02.000Z',
      '2026-01-01T00:00:01.000Z',
    ]);
    expect(runs[2]).toMatchObject({ durationMs: 50, instance: 'node-a' });
    expect(runs[2].error).toBeUndefined();
    expect(runs[2].startedAt.getTime()).toBe(runs[2].scheduledAt.getTime());
    expect(runs[1]).toMatchObject({ error: 'boom 2', durationMs: 0 });
    expect(runs[0]).toMatchObject({ durationMs: 300 });
    expect(runs[0].error).toMatch(/300/);
    await closeFaked(app);
  });

  it('is bounded by jobs.history and by limit', async () => {
    const app = await bootJobs([Work], { jobs: { history: 4 } });
    await vi.advanceTimersByTimeAsync(10_500);
    const registry = app.get(JobRegistry);
    const runs = await registry.history('work');
    expect(runs).toHaveLength(4);
    expect(runs[0].scheduledAt.toISOString()).toBe('2026-01-01T00:00:10.000Z');
    expect(await registry.history('work', { limit: 2 })).toEqual(runs.slice(0, 2));
    expect(await registry.history('work', { limit: 100 })).toHaveLength(4);
    await closeFaked(app);
  });

  it('records trigger() runs too, and keeps none with jobs.history: 0', async () => {
    const app = await bootJobs([Work], { jobs: { history: 0 } });
    const first = app.get(JobRegistry).trigger('work');
    await vi.advanceTimersByTimeAsync(60);
    await first;
    expect(await app.get(JobRegistry).history('work')).toEqual([]);
    await closeFaked(app);
    const again = await bootJobs([Work]);
    const call = again.get(JobRegistry).trigger('work');
    await vi.advanceTimersByTimeAsync(60);
    await call;
    expect(await again.get(JobRegistry).history('work')).toMatchObject([{ outcome: 'completed' }]);
    await closeFaked(again);
  });

  it('rejects an unknown job and a bad limit with a message naming them', async () => {
    const app = await bootJobs([Work]);
    const registry = app.get(JobRegistry);
    await expect(registry.history('nope')).rejects.toBeInstanceOf(UnknownJobError);
    for (const limit of [0, -1, 1.5, Number.NaN, '3' as unknown as number]) {
      const error = await registry.history('work', { limit }).catch((e: unknown) => e as Error);
      expect(error).toBeInstanceOf(InvalidJobError);
      expect((error as Error).message).toContain('"limit"');
      expect((error as Error).message).toContain('"work"');
    }
    await closeFaked(app);
  });

  it('fails boot on an invalid jobs.history, naming the option', async () => {
    for (const history of [-1, 1.5, 'x', 20_000]) {
      await expect(bootJobs([Work], { jobs: { history: history as number } })).rejects.toThrow(/"jobs\.history"/);
    }
  });
});
