import { Injectable } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { SampleConfig } from '../config/sample-config.js';

/** A simulated mail provider: slow, and it fails now and then (`MAILER_FAILURE_RATE`). */
@Injectable()
export class MailerService {
  sent = 0;

  constructor(private readonly config: SampleConfig) {}

  async send(to: string, subject: string, signal: AbortSignal): Promise<void> {
    await sleep(this.config.mailerDelayMs, undefined, { signal });
    if (Math.random() < this.config.mailerFailureRate) {
      throw new Error(`mail provider refused ${to} (simulated outage)`);
    }
    void subject;
    this.sent++;
  }
}
