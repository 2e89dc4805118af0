import { Injectable, ServiceUnavailableException } from '@nestjs/common';
import { InjectSupervisor, MaxChildrenError, SupervisorShutdownError, type TaskSupervisor } from 'nestjs-concurrency';
import { NEWSLETTER_RECIPIENTS } from '../config/sample-config.js';
import { MailerService } from './mailer.service.js';

export interface SendAccepted {
  taskId: string;
  supervisor: string;
  recipients: number;
}

@Injectable()
export class NewslettersService {
  constructor(
    @InjectSupervisor('emails') private readonly emails: TaskSupervisor,
    private readonly mailer: MailerService,
  ) {}

  /** Answers at once; the emails go out in a supervised child that is restarted after a failure (transient). */
  send(newsletterId: number): SendAccepted {
    const recipients = Array.from({ length: NEWSLETTER_RECIPIENTS }, (_, i) => `reader${i + 1}@example.com`);
    // Progress lives outside the attempt, so a restart resumes after the last email that went out.
    let next = 0;
    try {
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
      if (error instanceof MaxChildrenError || error instanceof SupervisorShutdownError) {
        throw new ServiceUnavailableException(error.message);
      }
      throw error;
    }
  }
}
