// Verbatim from docs/fan-out.md (test/compat/docs-samples.sh checks they stay the same): the documented sample, built and run by this app.
import { Injectable } from '@nestjs/common';
import { FanOut, type Outcome } from 'nestjs-concurrency';

interface Doc {
  id: string;
  body: string;
}

@Injectable()
export class Storage {
  async put(doc: Doc, opts: { signal: AbortSignal }): Promise<string> {
    await fetch(`https://storage.example.com/${doc.id}`, { method: 'PUT', body: doc.body, signal: opts.signal });
    return doc.id;
  }
}

@Injectable()
export class DocumentsService {
  constructor(
    private readonly fanOut: FanOut,
    private readonly storage: Storage,
  ) {}

  // at most 8 uploads at once, 10 s each; one failure cancels the rest
  uploadAll(docs: Doc[], signal: AbortSignal): Promise<string[]> {
    return this.fanOut.map(docs, (doc, ctx) => this.storage.put(doc, { signal: ctx.signal }), {
      concurrency: 8,
      timeout: 10_000,
      signal,
    });
  }

  // or: one outcome per document, never rejects for an item
  uploadEach(docs: Doc[]): Promise<Outcome<Doc, string>[]> {
    return this.fanOut.settle(docs, (doc, ctx) => this.storage.put(doc, ctx));
  }
}
