/**
 * A job that cannot be scheduled: an invalid cron expression or interval, an invalid option, a duplicate name, or
 * a job in a request-scoped provider. Thrown by `app.init()`.
 */
export class InvalidJobError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InvalidJobError';
  }
}
