import {
  Body,
  Controller,
  Get,
  ParseArrayPipe,
  Post,
  Query,
  HttpCode,
  HttpStatus,
  StreamableFile,
} from '@nestjs/common';
import { Readable } from 'node:stream';
import { FanOut, type Outcome, workerFn } from 'nestjs-concurrency';
import { MAX_UPLOAD_BATCH } from '../config/sample-config.js';
import { BatchLimitPipe } from './batch-limit.pipe.js';
import { DigestQuery } from './digest-query.dto.js';
import { DocumentStoreService } from './document-store.service.js';
import { ExportQuery } from './export-query.dto.js';
import { UploadDocumentDto } from './upload-document.dto.js';

type UploadResult =
  { name: string; status: 'uploaded'; bytes: number } | { name: string; status: 'failed'; error: string };

const toResult = (o: Outcome<UploadDocumentDto, { name: string; bytes: number }>): UploadResult =>
  o.status === 'fulfilled'
    ? { name: o.input.name, status: 'uploaded', bytes: o.value.bytes }
    : { name: o.input.name, status: 'failed', error: o.reason instanceof Error ? o.reason.message : String(o.reason) };

/**
 * The CPU-bound hashing of POST /documents/digest, on FanOut's worker threads. The module is the JavaScript file beside
 * this one, in the sources and in dist/ alike (an ES module locates it from its own URL; CommonJS would use __dirname).
 */
const digestWorker = workerFn<{ content: string; rounds: number }, string>(
  new URL('./digest.worker.mjs', import.meta.url),
  'digest',
);

@Controller('documents')
export class DocumentsController {
  constructor(
    private readonly fanOut: FanOut,
    private readonly store: DocumentStoreService,
  ) {}

  /** Uploads a batch, 4 at a time, 2 s per document at most; answers one outcome per document. */
  @Post('upload')
  @HttpCode(HttpStatus.OK)
  async upload(
    @Body(
      new BatchLimitPipe(MAX_UPLOAD_BATCH),
      new ParseArrayPipe({ items: UploadDocumentDto, whitelist: true, forbidNonWhitelisted: true }),
    )
    documents: UploadDocumentDto[],
  ): Promise<{ uploaded: number; failed: number; results: UploadResult[] }> {
    const outcomes = await this.fanOut.settle(
      documents,
      (doc, { signal }) => this.store.put(doc.name, doc.content, signal),
      { concurrency: 4, timeout: 2000 },
    );
    const results = outcomes.map(toResult);
    const uploaded = results.filter((r) => r.status === 'uploaded').length;
    return { uploaded, failed: results.length - uploaded, results };
  }

  /**
   * Exports `count` generated documents, 8 at a time, streamed as NDJSON in completion order: each line leaves as soon
   * as its document is done. A client that disconnects destroys the stream, which leaves the `for await` and so
   * aborts the uploads still running.
   */
  @Get('export')
  export(@Query() { count }: ExportQuery): StreamableFile {
    const docs = (function* () {
      for (let i = 1; i <= count; i++) yield { name: `export-${i}.txt`, content: `document ${i}` };
    })();
    const outcomes = this.fanOut.stream(docs, (doc, { signal }) => this.store.put(doc.name, doc.content, signal), {
      concurrency: 8,
      ordered: false,
      timeout: 2000,
    });
    const lines = async function* () {
      for await (const outcome of outcomes) yield JSON.stringify({ index: outcome.index, ...toResult(outcome) }) + '\n';
    };
    return new StreamableFile(Readable.from(lines()), { type: 'application/x-ndjson' });
  }

  /**
   * Hashes each document `rounds` times (sha256) on the worker threads, a thread per core, and answers the digests in
   * input order. The event loop stays free meanwhile: other requests (GET /health) are answered at once.
   */
  @Post('digest')
  @HttpCode(HttpStatus.OK)
  async digest(
    @Query() { rounds }: DigestQuery,
    @Body(
      new BatchLimitPipe(MAX_UPLOAD_BATCH),
      new ParseArrayPipe({ items: UploadDocumentDto, whitelist: true, forbidNonWhitelisted: true }),
    )
    documents: UploadDocumentDto[],
  ): Promise<{ rounds: number; results: { name: string; digest: string }[] }> {
    const digests = await this.fanOut.map(
      documents.map((doc) => ({ content: doc.content, rounds })),
      digestWorker,
      { timeout: 60_000 },
    );
    return { rounds, results: documents.map((doc, i) => ({ name: doc.name, digest: digests[i] })) };
  }
}
