import { ConsoleLogger, Injectable } from '@nestjs/common';
import { Interval, InvalidJobError, type JobLease, type JobLock, JobRegistry, Timeout } from 'nestjs-concurrency';
import { bootError, bootJobs, closeFaked } from './utils/boot.js';

/** A lock store that grants every tick, so `lock: true` jobs run on one instance. */
class GrantingLock implements JobLock {
  token = 0;
  async acquire(): Promise<JobLease> {
    const token = ++this.token;
    return { token, release: async () => {} };
  }
}

describe("the @nestjs/schedule decorator shapes, with this package's options", () => {
  beforeEach(() => vi.useFakeTimers({ now: new Date('2030-01-01T00:00:00.000Z') }));
  afterEach(() => vi.useRealTimers());

  it("accepts @Interval('name', ms, options) and @Timeout('name', ms, options): the name and the options both apply", async () => {
    @Injectable()
    class Jobs {
      ticks = 0;
      once = 0;
      @Interval('locked-tick', 100, { lock: true, timeout: 50 })
      tick() {
        this.ticks++;
      }
      @Timeout('named-once', 150, { timeout: 50 })
      fire() {
        this.once++;
      }
    }
    const lock = new GrantingLock();
    const app = await bootJobs([Jobs], { jobs: { lock } });
    await vi.advanceTimersByTimeAsync(350);
    const registry = app.get(JobRegistry);
    expect(registry.get('locked-tick')).toMatchObject({ kind: 'interval', runs: 3 });
    expect(registry.get('named-once')).toMatchObject({ kind: 'timeout', runs: 1 });
    expect(app.get(Jobs)).toMatchObject({ ticks: 3, once: 1 });
    // The lock was really asked for every tick: the options were not dropped.
    expect(lock.token).toBeGreaterThanOrEqual(3);
    await closeFaked(app);
  });

  it('fails boot when the positional name and options.name disagree, naming the option', async () => {
    @Injectable()
    class Jobs {
      @Interval('one', 100, { name: 'other' })
      tick() {}
    }
    const error = await bootError([Jobs]);
    expect(error).toBeInstanceOf(InvalidJobError);
    expect(error.message).toContain('"name"');
    expect(error.message).toContain('Jobs.tick()');
    expect(error.message).toContain('"one"');
  });
});

describe('job logs', () => {
  beforeEach(() => vi.useFakeTimers({ now: new Date('2030-01-01T00:00:00.000Z') }));
  afterEach(() => vi.useRealTimers());

  it('prints a job failure and a lock warning each once, with the Jobs context, and no stray bare "Jobs" line', async () => {
    @Injectable()
    class Jobs {
      @Interval(100, { name: 'failing' })
      fail() {
        throw new Error('boom');
      }
      @Interval(100, { name: 'locked', lock: true })
      locked() {}
    }
    const broken: JobLock = { acquire: () => Promise.reject(new Error('store down')) };
    const lines: string[] = [];
    const capture = (chunk: string | Uint8Array) => {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      return true;
    };
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(capture);
    const err = vi.spyOn(process.stderr, 'write').mockImplementation(capture);
    try {
      const app = await bootJobs([Jobs], { jobs: { lock: broken } }, new ConsoleLogger({ colors: false }));
      await vi.advanceTimersByTimeAsync(150);
      await closeFaked(app);
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
    const failure = lines.filter((l) => l.includes('Job "failing" failed: boom'));
    const warning = lines.filter((l) => l.includes('Job "locked" skipped the tick'));
    expect(failure).toHaveLength(1);
    expect(failure[0]).toContain('[Jobs]');
    expect(warning).toHaveLength(1);
    expect(warning[0]).toContain('[Jobs]');
    expect(lines.filter((l) => /\[Jobs\] Jobs$/.test(l.trim()))).toEqual([]);
  });
});
