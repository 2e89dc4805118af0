import { Injectable, Logger } from '@nestjs/common';
import { CacheService, Cron, type JobContext } from 'nestjs-concurrency';
import { MailerService } from '../newsletters/mailer.service.js';

export interface NightlyReport {
  at: string;
  emailsSent: number;
  cache: ReturnType<CacheService['stats']>;
  fencingToken?: number;
}

/** A nightly report; with `REDIS_URL` set, one instance of the cluster writes it (lock: true). */
@Injectable()
export class NightlyReportJob {
  private readonly logger = new Logger(NightlyReportJob.name);
  last: NightlyReport | undefined;

  constructor(
    private readonly cache: CacheService,
    private readonly mailer: MailerService,
  ) {}

  @Cron('0 0 3 * * *', { name: 'nightly-report', timeZone: 'UTC', lock: true })
  report({ scheduledAt, fencingToken }: JobContext): NightlyReport {
    this.last = {
      at: scheduledAt.toISOString(),
      emailsSent: this.mailer.sent,
      cache: this.cache.stats(),
      fencingToken,
    };
    this.logger.log(`Nightly report: ${JSON.stringify(this.last)}`);
    return this.last;
  }
}
