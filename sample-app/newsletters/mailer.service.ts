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

  /**
   * `send`, unless this newsletter already went to `to` (from this instance): what makes a durable send that runs
   * again after a failure or a restart resume instead of mailing everyone twice. A real app keeps this in its database.
   */
  async sendOnce(newsletterId: number, to: string, signal: AbortSignal): Promise<void> {
    const key = `${newsletterId}:${to}`;
    if (this.delivered.has(key)) return;
    await this.send(to, `Newsletter #${newsletterId}`, signal);
    this.delivered.add(key);
  }

  private readonly delivered = new Set<string>();
}
