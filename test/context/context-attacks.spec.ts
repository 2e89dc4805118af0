import { AsyncLocalStorage } from 'node:async_hooks';
import { FanOut, TaskSupervisor } from 'nestjs-concurrency';

/**
 * Starters that change the async context between two starts in one tick by means other than `als.run()` on an
 * `AsyncLocalStorage` already in use: each child still sees exactly what its starter saw.
 */

const Supervisor = TaskSupervisor as unknown as new (name: string, opts?: object) => TaskSupervisor;
const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('async context of supervised work, changed between two starts in one tick', () => {
  let sup: TaskSupervisor;
  beforeEach(() => {
    sup = new Supervisor('ctx-attacks');
  });
  afterEach(async () => {
    await sup.shutdown(1000);
  });

  it('an AsyncLocalStorage first entered between two starts is seen by the second child only', async () => {
    const als = new AsyncLocalStorage<string>();
    const fresh = new AsyncLocalStorage<string>();
    const seen: string[] = [];
    const start = () => sup.startChild(() => void seen.push(`${als.getStore()}/${fresh.getStore()}`));
    als.run('A', () => {
      start();
      fresh.enterWith('x');
      start();
    });
    await tick();
    expect(seen).toEqual(['A/undefined', 'A/x']);
  });

  it('an AsyncLocalStorage first run between two starts is seen by the child started inside only', async () => {
    const als = new AsyncLocalStorage<string>();
    const fresh = new AsyncLocalStorage<string>();
    const seen: string[] = [];
    const start = () => sup.startChild(() => void seen.push(`${als.getStore()}/${fresh.getStore()}`));
    als.run('A', () => {
      start();
      fresh.run('x', start);
      start();
    });
    await tick();
    expect(seen).toEqual(['A/undefined', 'A/x', 'A/undefined']);
  });

  it('a child started inside als.exit() sees no value, like the code that started it', async () => {
    const als = new AsyncLocalStorage<string>();
    const seen: string[] = [];
    const start = () => sup.startChild(() => void seen.push(`${als.getStore()}`));
    als.run('A', () => {
      start();
      als.exit(start);
      start();
    });
    await tick();
    expect(seen).toEqual(['A', 'undefined', 'A']);
  });

  it('nested als.run() of two storages: each child sees both values of its starter', async () => {
    const a = new AsyncLocalStorage<string>();
    const b = new AsyncLocalStorage<string>();
    const seen: string[] = [];
    const start = () => sup.startChild(() => void seen.push(`${a.getStore()}/${b.getStore()}`));
    a.run('A1', () => b.run('B1', start));
    a.run('A1', () => b.run('B2', start));
    a.run('A2', () => b.run('B2', start));
    await tick();
    expect(seen).toEqual(['A1/B1', 'A1/B2', 'A2/B2']);
  });
});

describe('async context of fan-out work, changed between two starts in one tick', () => {
  let fanOut: FanOut;
  beforeEach(() => {
    fanOut = new FanOut();
  });
  afterEach(async () => {
    await fanOut.onApplicationShutdown?.();
  });

  it('FanOut.async(): an AsyncLocalStorage first entered between two starts is seen by the second only', async () => {
    const fresh = new AsyncLocalStorage<string>();
    const read = () => fanOut.async(() => `${fresh.getStore()}`);
    const a = read();
    fresh.enterWith('x');
    const b = read();
    expect(await fanOut.awaitMany([a, b])).toEqual(['undefined', 'x']);
  });
});

describe("a child's enterWith() on a storage never used before", () => {
  it('does not leak into the next child started in the same context', async () => {
    const sup = new Supervisor('ctx-leak');
    const als = new AsyncLocalStorage<string>();
    const fresh = new AsyncLocalStorage<string>();
    const seen: string[] = [];
    als.run('A', () => {
      sup.startChild(() => {
        fresh.enterWith('leak');
        seen.push(`${als.getStore()}/${fresh.getStore()}`);
      });
      sup.startChild(() => void seen.push(`${als.getStore()}/${fresh.getStore()}`));
    });
    await sup.whenIdle();
    await sup.shutdown(1000);
    expect(seen).toEqual(['A/leak', 'A/undefined']);
  });
});
