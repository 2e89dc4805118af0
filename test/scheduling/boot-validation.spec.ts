import { Injectable, Scope } from '@nestjs/common';
import { Cron, InMemoryJobLock, InvalidJobError, Interval, Timeout } from 'nestjs-concurrency';
import { bootError } from './utils/boot.js';

describe('job validation at boot', () => {
  it('fails app.init() on an invalid cron expression, naming class, method and expression', async () => {
    @Injectable()
    class Reports {
      @Cron('61 * * * *')
      nightly() {}
    }
    const error = await bootError([Reports]);
    expect(error).toBeInstanceOf(InvalidJobError);
    expect(error.message).toContain('Reports.nightly()');
    expect(error.message).toContain('"61 * * * *"');
    // cron's own reason is kept, in the message and as the cause.
    expect(error.cause).toBeInstanceOf(Error);
    expect(error.message).toContain((error.cause as Error).message);
  });

  it('fails on an invalid time zone', async () => {
    @Injectable()
    class Reports {
      @Cron('0 * * * *', { timeZone: 'Mars/Olympus' })
      hourly() {}
    }
    const error = await bootError([Reports]);
    expect(error.message).toMatch(/^Invalid job option "timeZone" on Reports\.hourly\(\): .*"Mars\/Olympus"/);
  });

  it('blames the expression, with its own reason, when both the expression and the time zone are wrong', async () => {
    @Injectable()
    class Reports {
      @Cron('61 * * * *', { timeZone: 'Mars/Olympus' })
      hourly() {}
    }
    const error = await bootError([Reports]);
    expect(error.message).toMatch(/^Invalid cron expression "61 \* \* \* \*" on Reports\.hourly\(\)/);
    expect(error.message).not.toContain('timezone');
  });

  it.each([0, -5, Number.NaN, Infinity])('fails on a non-positive or invalid interval (%s)', async (ms) => {
    @Injectable()
    class Poller {
      @Interval(ms)
      poll() {}
    }
    const error = await bootError([Poller]);
    expect(error).toBeInstanceOf(InvalidJobError);
    expect(error.message).toContain(`Invalid interval ${ms} on Poller.poll()`);
  });

  it('fails on a negative timeout', async () => {
    @Injectable()
    class Warmup {
      @Timeout(-1)
      warm() {}
    }
    expect((await bootError([Warmup])).message).toContain('Invalid timeout -1 on Warmup.warm()');
  });

  it('fails on duplicate job names, naming both places', async () => {
    @Injectable()
    class A {
      @Interval(1000, { name: 'sync' })
      run() {}
    }
    @Injectable()
    class B {
      @Cron('* * * * *', { name: 'sync' })
      run() {}
    }
    const error = await bootError([A, B]);
    expect(error.message).toBe('Duplicate job name "sync" on A.run() and B.run(). Give each job a unique name option.');
  });

  it('fails for a job in a request-scoped provider instead of skipping it', async () => {
    @Injectable({ scope: Scope.REQUEST })
    class PerRequest {
      @Interval(1000)
      tick() {}
    }
    const error = await bootError([PerRequest]);
    expect(error).toBeInstanceOf(InvalidJobError);
    expect(error.message).toContain('Cannot schedule PerRequest.tick(): PerRequest is request-scoped');
  });

  it('fails for lock: true without a lock store', async () => {
    @Injectable()
    class Clustered {
      @Cron('* * * * *', { lock: true })
      run() {}
    }
    expect((await bootError([Clustered])).message).toContain(
      'Clustered.run() asks for lock: true but no lock store is configured',
    );
  });

  it("fails for lock with mode: 'fixed-delay', which has no tick shared by the instances", async () => {
    @Injectable()
    class Clustered {
      @Interval(1000, { mode: 'fixed-delay', lock: true })
      run() {}
    }
    const error = await bootError([Clustered], { jobs: { lock: new InMemoryJobLock() } });
    expect(error.message).toContain("Clustered.run() combines lock with mode: 'fixed-delay'");
    expect(error.message).toContain("Use mode: 'fixed-rate'");
  });

  it('fails on an invalid option value, naming the option', async () => {
    @Injectable()
    class Odd {
      @Interval(1000, { overlap: 'sometimes' as 'skip' })
      run() {}
    }
    expect((await bootError([Odd])).message).toBe(
      `Invalid job option "overlap" on Odd.run(): expected 'skip', 'allow', 'buffer-one' or 'cancel-previous', got "sometimes".`,
    );
  });

  it.each([
    ['mode', { mode: 'whenever' }],
    ['initialDelay', { initialDelay: -1 }],
    ['timeout', { timeout: 0 }],
  ])('fails on an invalid %s', async (option, value) => {
    @Injectable()
    class Odd {
      @Interval(1000, value as object)
      run() {}
    }
    expect((await bootError([Odd])).message).toContain(`Invalid job option "${option}" on Odd.run()`);
  });
});
