import { AsyncLocalStorage } from 'node:async_hooks';
import { Logger } from '@nestjs/common';
import { FanOut, TaskSupervisor } from 'nestjs-concurrency';

/**
 * Every piece of work runs in the async context of the code that started it: tasks started in one tick by different
 * callers (requests, tenants, spans) each see their own `AsyncLocalStorage` value, not the first starter's.
 */

const Supervisor = TaskSupervisor as unknown as new (name: string, opts?: object) => TaskSupervisor;
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('async context of supervised work', () => {
  const als = new AsyncLocalStorage<string>();
  let sup: TaskSupervisor;
  beforeEach(() => {
    sup = new Supervisor('ctx');
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await sup.shutdown(1000);
  });

  it('startChild: two starters in the same tick each see their own value', async () => {
    const seen: string[] = [];
    const start = () => sup.startChild(() => void seen.push(`${als.getStore()}`));
    als.run('A', start);
    als.run('B', start);
    start();
    await tick();
    expect(seen).toEqual(['A', 'B', 'undefined']);
  });

  it('startChild: many starters in one tick, in alternating contexts, keep theirs', async () => {
    const seen: string[] = [];
    const expected: string[] = [];
    for (let i = 0; i < 1000; i++) {
      const value = `r${i % 7}`;
      expected.push(value);
      als.run(value, () => sup.startChild(() => void seen.push(als.getStore()!)));
    }
    await sup.whenIdle();
    expect(seen).toEqual(expected);
  });

  it('async(): two starters in the same tick each get their own value back', async () => {
    const read = () => sup.async(() => als.getStore());
    const a = als.run('A', read);
    const b = als.run('B', read);
    expect([await a.await(), await b.await()]).toEqual(['A', 'B']);
  });

  it('a restarted attempt runs in the context of the code that started the child', async () => {
    vi.spyOn(Logger.prototype, 'error').mockImplementation(() => {});
    const seen: string[] = [];
    let attempts = 0;
    als.run('A', () =>
      sup.startChild(
        async () => {
          seen.push(`${++attempts}:${als.getStore()}`);
          if (attempts === 1) throw new Error('first attempt fails');
        },
        { restart: 'transient' },
      ),
    );
    als.run('B', () => sup.startChild(() => undefined));
    // The failure is settled (and the restart queued) from wherever: here, a context with another value.
    await als.run('C', async () => {
      for (let i = 0; i < 50 && seen.length < 2; i++) await tick();
    });
    expect(seen).toEqual(['1:A', '2:A']);
  });

  it("enterWith() in one child's synchronous part does not leak into the next child", async () => {
    const seen: string[] = [];
    als.run('A', () => {
      sup.startChild(() => {
        als.enterWith('leak');
        seen.push(als.getStore()!);
      });
      sup.startChild(() => void seen.push(als.getStore()!));
    });
    await sup.whenIdle();
    expect(seen).toEqual(['leak', 'A']);
  });

  it('a child started inside a child sees the context it was started in', async () => {
    const seen: string[] = [];
    als.run('outer', () =>
      sup.startChild(() => {
        als.run('inner', () => sup.startChild(() => void seen.push(als.getStore()!)));
        sup.startChild(() => void seen.push(als.getStore()!));
      }),
    );
    for (let i = 0; i < 5; i++) await tick();
    expect(seen).toEqual(['inner', 'outer']);
  });
});

describe('async context of fan-out work', () => {
  const als = new AsyncLocalStorage<string>();
  let fanOut: FanOut;
  beforeEach(() => {
    fanOut = new FanOut();
  });
  afterEach(async () => {
    await fanOut.onApplicationShutdown?.();
  });

  it('FanOut.async(): two starters in the same tick each see their own value', async () => {
    const read = () => fanOut.async(() => als.getStore());
    const a = als.run('A', read);
    const b = als.run('B', read);
    expect(await fanOut.awaitMany([a, b])).toEqual(['A', 'B']);
  });

  it("map(): every item sees its caller's value, also items started as others finish", async () => {
    const run = (value: string) =>
      als.run(value, () =>
        fanOut.map(
          [1, 2, 3, 4, 5, 6],
          async (n) => {
            await tick();
            return `${n}${als.getStore()}`;
          },
          { concurrency: 2 },
        ),
      );
    const [a, b] = await Promise.all([run('A'), run('B')]);
    expect(a).toEqual(['1A', '2A', '3A', '4A', '5A', '6A']);
    expect(b).toEqual(['1B', '2B', '3B', '4B', '5B', '6B']);
  });

  it('stream(): items run in the context in which iteration started, whoever calls next() later', async () => {
    const stream = fanOut.stream([1, 2, 3], async (n) => `${n}${als.getStore()}`, { concurrency: 1 });
    const iterator = als.run('iterating', () => stream[Symbol.asyncIterator]());
    const values: unknown[] = [];
    await als.run('puller', async () => {
      for (let step = await iterator.next(); !step.done; step = await iterator.next()) {
        values.push(step.value.status === 'fulfilled' ? step.value.value : step.value.reason);
      }
    });
    expect(values).toEqual(['1iterating', '2iterating', '3iterating']);
  });
});
