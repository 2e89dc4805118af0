import { Injectable, Logger } from '@nestjs/common';
import { CacheService, Cron, type JobContext } from 'nestjs-concurrency';
import { MailerService } from '../newsletters/mailer.service.js';

export interface NightlyReport {
  at: string;
  emailsSent: number;
  cache: ReturnType<CacheService['stats']>;
  fencingToken?: number;
}

/**
 * A nightly report (03:00 UTC; `NIGHTLY_REPORT_CRON` overrides the schedule, read once at startup). With `REDIS_URL`
 * set, one instance of the cluster writes each tick's report (lock: true).
 */
@Injectable()
export class NightlyReportJob {
  private readonly logger = new Logger(NightlyReportJob.name);
  /** The reports this instance wrote, newest last (the last 100). */
  readonly written: NightlyReport[] = [];

  constructor(
    private readonly cache: CacheService,
    private readonly mailer: MailerService,
  ) {}

  @Cron(process.env.NIGHTLY_REPORT_CRON ?? '0 0 3 * * *', { name: 'nightly-report', timeZone: 'UTC', lock: true })
  report({ scheduledAt, fencingToken }: JobContext): NightlyReport {
    const report = {
      at: scheduledAt.toISOString(),
      emailsSent: this.mailer.sent,
      cache: this.cache.stats(),
      fencingToken,
    };
    if (this.written.push(report) > 100) this.written.shift();
    this.logger.log(`Nightly report: ${JSON.stringify(report)}`);
    return report;
  }
}
