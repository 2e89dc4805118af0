/** New work offered to a supervisor that is shutting down (or has shut down). */
export class SupervisorShutdownError extends Error {
  constructor(readonly supervisor: string) {
    super(
      `Supervisor "${supervisor}" is shutting down and accepts no new children. ` +
        'Start work before shutdown begins, or check the application lifecycle.',
    );
    this.name = 'SupervisorShutdownError';
  }
}
