import { Injectable } from '@nestjs/common';
import { type DurableTaskContext, TaskHandler } from 'nestjs-concurrency';
import { MailerService } from './mailer.service.js';

/** The payload of a durable send: plain data, as it travels through Redis. */
export interface NewsletterSend {
  newsletterId: number;
  recipients: string[];
}

/**
 * The durable form of a send (with `REDIS_URL`): a BullMQ job that any instance may run, that survives a restart and
 * is restarted after a failure. At least once: a send may run again after a crash, so each email goes through
 * `MailerService.sendOnce` (which skips a recipient this newsletter already reached).
 */
@Injectable()
export class NewsletterSender {
  constructor(private readonly mailer: MailerService) {}

  @TaskHandler('newsletter.send', { maxRestarts: 10, backoff: 100 })
  async send({ newsletterId, recipients }: NewsletterSend, ctx: DurableTaskContext): Promise<{ sent: number }> {
    for (let i = 0; i < recipients.length; i++) {
      await this.mailer.sendOnce(newsletterId, recipients[i], ctx.signal);
      await ctx.progress({ sent: i + 1, of: recipients.length });
    }
    return { sent: recipients.length };
  }
}
