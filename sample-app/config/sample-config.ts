/**
 * The sample app's settings, from environment variables with defaults. Tests override the `SampleConfig` provider to
 * make the simulated dependencies fast and deterministic.
 */
export class SampleConfig {
  /** Redis for the cache L2 and the job lock; unset: everything in memory. */
  redisUrl: string | undefined = process.env.REDIS_URL || undefined;
  /** Simulated mailer: time per email, and the chance an email fails (the supervisor restarts the send). */
  mailerDelayMs = Number(process.env.MAILER_DELAY_MS ?? 50);
  mailerFailureRate = Number(process.env.MAILER_FAILURE_RATE ?? 0.1);
  /** Simulated object store: latency per upload. */
  storeDelayMs = Number(process.env.STORE_DELAY_MS ?? 100);
  /** Simulated weather upstream: latency per reading. */
  upstreamDelayMs = Number(process.env.UPSTREAM_DELAY_MS ?? 300);
  /** The dashboard (/_concurrency): the password of the browser prompt, or `Authorization: Bearer <this>`; unset: this machine only. */
  dashboardToken: string | undefined = process.env.DASHBOARD_TOKEN || undefined;
  /** Cities the temperature refresher keeps warm. */
  cities = (process.env.CITIES ?? 'paris,lisbon,oslo').split(',').filter(Boolean);

  static fromEnv(): SampleConfig {
    return new SampleConfig();
  }
}

/** A batch upload larger than this answers 413. */
export const MAX_UPLOAD_BATCH = 100;
/** Recipients per newsletter in the simulation. */
export const NEWSLETTER_RECIPIENTS = 20;
