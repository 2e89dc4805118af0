import { StreamableFile } from '@nestjs/common';
import { Readable } from 'node:stream';
import { NotCacheable } from '../../lib/caching/cache-envelope.js';

describe('NotCacheable.discard() (a background refresh result nobody will send)', () => {
  it('destroys the stream of a StreamableFile', () => {
    const stream = new Readable({ read() {} });
    new NotCacheable(new StreamableFile(stream)).discard();
    expect(stream.destroyed).toBe(true);
  });

  it('cancels a web ReadableStream', async () => {
    let cancelled = false;
    const stream = new ReadableStream({
      cancel() {
        cancelled = true;
      },
    });
    new NotCacheable(stream).discard();
    await vi.waitFor(() => expect(cancelled).toBe(true));
  });

  it('returns an async iterator (its finally blocks run)', async () => {
    let closed = false;
    async function* rows() {
      try {
        yield 1;
        yield 2;
      } finally {
        closed = true;
      }
    }
    const iterator = rows();
    await iterator.next(); // started: suspended at its first yield
    new NotCacheable(iterator).discard();
    await vi.waitFor(() => expect(closed).toBe(true));
  });

  it('never throws nor leaves an unhandled rejection for a result whose members throw', async () => {
    const hostile = new Proxy(
      {},
      {
        get() {
          throw new Error('get trap');
        },
      },
    );
    expect(() => new NotCacheable(hostile).discard()).not.toThrow();
    const failing = { next: async () => ({ done: true }), return: () => Promise.reject(new Error('no')) };
    expect(() => new NotCacheable(failing).discard()).not.toThrow();
  });
});
