import { Injectable } from '@nestjs/common';
import { FanOut, Interval, TaskSupervisor, TaskTimeoutError } from 'nestjs-concurrency';
import { bootKit } from './helpers.js';

@Injectable()
class Sync {
  @Interval(1000, { name: 'sync' })
  run(): void {
    throw new Error('sync failed');
  }
}

describe('ConcurrencyTester.failures()', () => {
  it('is empty when nothing failed', async () => {
    const { app, tester } = await bootKit([]);
    app.get(TaskSupervisor).startChild(() => 'fine');
    await tester.idle();
    expect(tester.failures()).toEqual([]);
    await app.close();
  });

  it('returns the failures of fire-and-forget tasks, each attempt, by name or id, with their errors', async () => {
    const { app, tester } = await bootKit([]);
    const supervisor = app.get(TaskSupervisor);
    const boom = new Error('boom');
    supervisor.startChild(
      ({ attempt }) => {
        if (attempt === 1) throw boom;
      },
      { name: 'flaky', restart: 'transient' },
    );
    const ref = supervisor.startChild(() => Promise.reject(new TypeError('anonymous')));
    await tester.idle();
    expect(tester.failures()).toEqual([
      { kind: 'task', name: 'flaky', error: boom },
      { kind: 'task', name: ref.id, error: new TypeError('anonymous') },
    ]);
    await app.close();
  });

  it('reports a task that timed out with its TaskTimeoutError', async () => {
    const { app, tester } = await bootKit([]);
    app
      .get(TaskSupervisor)
      .startChild(({ signal }) => new Promise((resolve) => signal.addEventListener('abort', resolve)), {
        name: 'slow',
        timeout: 10,
      });
    await tester.idle();
    const [failure] = tester.failures();
    expect(failure).toMatchObject({ kind: 'task', name: 'slow' });
    expect(failure.error).toBeInstanceOf(TaskTimeoutError);
    await app.close();
  });

  it("reports a job's failed run once, as the job, whether run by runJob() or advance()", async () => {
    const { app, tester } = await bootKit([Sync]);
    await tester.runJob('sync');
    await tester.advance(2000);
    expect(tester.failures()).toEqual([
      { kind: 'job', name: 'sync', error: new Error('sync failed') },
      { kind: 'job', name: 'sync', error: new Error('sync failed') },
      { kind: 'job', name: 'sync', error: new Error('sync failed') },
    ]);
    await app.close();
  });

  it('reports the fan-out items that failed or timed out, by their ItemContext id, even when settle() hides them', async () => {
    const { app, tester } = await bootKit([]);
    const outcomes = await app.get(FanOut).settle(
      [1, 2, 3],
      (x, { signal }) => {
        if (x === 2) throw new RangeError('two');
        if (x === 3) return new Promise((resolve) => signal.addEventListener('abort', resolve));
        return x;
      },
      { timeout: 20 },
    );
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'rejected']);
    const failures = tester.failures();
    expect(failures).toHaveLength(2);
    expect(failures[0]).toEqual({ kind: 'fan-out', name: 'settle-1:1', error: new RangeError('two') });
    expect(failures[1]).toMatchObject({ kind: 'fan-out', name: 'settle-1:2' });
    expect(failures[1].error).toBeInstanceOf(TaskTimeoutError);
    await app.close();
  });

  it('reports the item that failed a map(), not the siblings it aborted', async () => {
    const { app, tester } = await bootKit([]);
    const call = app.get(FanOut).map([1, 2], async (x, { signal }) => {
      if (x === 1) throw new Error('first fails');
      await new Promise((resolve) => signal.addEventListener('abort', resolve));
      throw signal.reason;
    });
    await expect(call).rejects.toThrow('first fails');
    await tester.idle();
    expect(tester.failures()).toEqual([{ kind: 'fan-out', name: 'map-1:0', error: new Error('first fails') }]);
    await app.close();
  });

  it('returns each failure once: a second call has only what failed since the first', async () => {
    const { app, tester } = await bootKit([Sync]);
    await tester.runJob('sync');
    expect(tester.failures()).toHaveLength(1);
    expect(tester.failures()).toEqual([]);
    app.get(TaskSupervisor).startChild(() => {
      throw new Error('later');
    });
    await tester.idle();
    expect(tester.failures()).toEqual([{ kind: 'task', name: expect.any(String), error: new Error('later') }]);
    await app.close();
  });
});
