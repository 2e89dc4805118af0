import { Injectable } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { SampleConfig } from '../config/sample-config.js';

/** A simulated object store (think S3): each upload takes `STORE_DELAY_MS`; a name starting with "fail" is refused. */
@Injectable()
export class DocumentStoreService {
  private readonly objects = new Map<string, string>();

  constructor(private readonly config: SampleConfig) {}

  async put(name: string, content: string, signal: AbortSignal): Promise<{ name: string; bytes: number }> {
    await sleep(this.config.storeDelayMs, undefined, { signal });
    if (name.startsWith('fail')) throw new Error(`store refused "${name}"`);
    this.objects.set(name, content);
    return { name, bytes: Buffer.byteLength(content) };
  }

  has(name: string): boolean {
    return this.objects.has(name);
  }
}
