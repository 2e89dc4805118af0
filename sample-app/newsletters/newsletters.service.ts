import { Injectable, ServiceUnavailableException } from '@nestjs/common';
import {
  DurableSupervisor,
  DurableUnavailableError,
  InjectSupervisor,
  MaxChildrenError,
  SupervisorShutdownError,
  type TaskSupervisor,
} from 'nestjs-concurrency';
import { NEWSLETTER_RECIPIENTS, SampleConfig } from '../config/sample-config.js';
import { MailerService } from './mailer.service.js';
import type { NewsletterSend } from './newsletter-sender.js';

export interface SendAccepted {
  taskId: string;
  supervisor: string;
  recipients: number;
}

@Injectable()
export class NewslettersService {
  constructor(
    @InjectSupervisor('emails') private readonly emails: TaskSupervisor,
    private readonly durable: DurableSupervisor,
    private readonly mailer: MailerService,
    private readonly config: SampleConfig,
  ) {}

  /**
   * Answers at once. In memory: the emails go out in a supervised child that is restarted after a failure
   * (transient). With `REDIS_URL`: the send is a durable task stored in Redis, run by any instance, that survives a
   * restart of this one.
   */
  async send(newsletterId: number): Promise<SendAccepted> {
    const recipients = Array.from({ length: NEWSLETTER_RECIPIENTS }, (_, i) => `reader${i + 1}@example.com`);
    try {
      if (this.config.redisUrl) {
        const child = await this.durable.startChild<NewsletterSend>('newsletter.send', { newsletterId, recipients });
        return { taskId: child.id, supervisor: 'durable', recipients: recipients.length };
      }
      // Progress lives outside the attempt, so a restart resumes after the last email that went out.
      let next = 0;
      const child = this.emails.startChild(
        async ({ signal }) => {
          for (; next < recipients.length; next++) {
            await this.mailer.send(recipients[next], `Newsletter #${newsletterId}`, signal);
          }
        },
        { name: `newsletter-${newsletterId}`, restart: 'transient' },
      );
      return { taskId: child.id, supervisor: this.emails.name, recipients: recipients.length };
    } catch (error) {
      if (
        error instanceof MaxChildrenError ||
        error instanceof SupervisorShutdownError ||
        error instanceof DurableUnavailableError
      ) {
        throw new ServiceUnavailableException(error.message);
      }
      throw error;
    }
  }
}
