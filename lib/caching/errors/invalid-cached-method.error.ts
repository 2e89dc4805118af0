/** A `@Cached` / `@CacheEvict` provider method that cannot be wrapped at boot (`app.init()` fails with it). */
export class InvalidCachedMethodError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidCachedMethodError';
  }
}
