/** An invalid `ConcurrencyModule.forRoot()`/`forRootAsync()` option, thrown while the application boots. */
export class ConcurrencyOptionsError extends Error {
  constructor(
    readonly option: string,
    message: string,
  ) {
    super(message);
    this.name = 'ConcurrencyOptionsError';
  }
}
