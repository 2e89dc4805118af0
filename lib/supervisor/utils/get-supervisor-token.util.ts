import { DEFAULT_SUPERVISOR } from '../../concurrency.constants.js';
import { SUPERVISOR_TOKEN_PREFIX } from '../supervisor.constants.js';

const requested = new Set<string>();

/**
 * The injection token of the supervisor `name` (`inject: [getSupervisorToken('emails')]` in a custom provider).
 * Every name passed here (and to `@InjectSupervisor`) before `ConcurrencyModule.forRoot()`/`forRootAsync()` is
 * evaluated gets a provider, even when the options only arrive asynchronously.
 */
export function getSupervisorToken(name: string = DEFAULT_SUPERVISOR): string {
  requested.add(name);
  return SUPERVISOR_TOKEN_PREFIX + name;
}

/** @internal Names requested through `getSupervisorToken`/`@InjectSupervisor` so far. */
export function requestedSupervisorNames(): Iterable<string> {
  return requested;
}
