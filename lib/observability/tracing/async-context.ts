import { AsyncLocalStorage, AsyncResource, executionAsyncResource } from 'node:async_hooks';

type Bag = Record<symbol, unknown>;

/** How Node (up to 22 by default) keeps an `AsyncLocalStorage` value on the running resource. */
const STORE_KEY = 'kResourceStore';

let resourceStores: boolean | undefined;

/**
 * Whether `AsyncLocalStorage` keeps its values as properties of the running async resource (Node 20 and 22), which
 * `als.run()` and `enterWith()` change in place. Node's async context frames (the default from Node 24) do not: there
 * no cheap comparison is possible and every start captures its own context. Probed once, on first use.
 */
function storesOnResources(): boolean {
  if (resourceStores !== undefined) return resourceStores;
  const probe = new AsyncLocalStorage<number>();
  const marker = Math.random();
  resourceStores = probe.run(marker, () => {
    const resource = executionAsyncResource() as Bag;
    return Object.getOwnPropertySymbols(resource).some((key) => resource[key] === marker);
  });
  probe.disable();
  return resourceStores;
}

/**
 * @internal The async context of the code that started some work (its `AsyncLocalStorage` values, OpenTelemetry's
 * active span), kept to run that work in later: `capture.runInAsyncScope(fn, thisArg, ...args)`.
 *
 * One `AsyncResource` per context rather than per start: a queue asks `matches()` whether the code starting the next
 * piece of work still runs in the context captured last (same resource, same values), and only captures a new one when
 * not. A burst of starters in one context costs one capture; `als.run('A', start); als.run('B', start)` costs two.
 */
export class ContextCapture extends AsyncResource {
  /** The resource that ran when this was captured. */
  readonly origin: object;
  /** The stores' keys and their values at capture time (empty when no `AsyncLocalStorage` is in use). */
  readonly keys: symbol[];
  readonly values: unknown[];
  readonly comparable: boolean;

  constructor() {
    super('nestjs-concurrency', { requireManualDestroy: true });
    this.origin = executionAsyncResource();
    this.comparable = storesOnResources();
    const keys: symbol[] = [];
    const values: unknown[] = [];
    for (const key of Object.getOwnPropertySymbols(this)) {
      if (key.description === STORE_KEY) {
        keys.push(key);
        values.push((this as unknown as Bag)[key]);
      }
    }
    this.keys = keys;
    this.values = values;
  }

  /** True when code running now sees the context captured here (so work it starts may share this capture). */
  matches(): boolean {
    if (!this.comparable) return false;
    const resource = executionAsyncResource() as Bag;
    if (resource !== this.origin && resource !== (this as unknown)) return false;
    const { keys, values } = this;
    for (let i = 0; i < keys.length; i++) if (resource[keys[i]] !== values[i]) return false;
    return true;
  }

  /**
   * Puts the captured values back after a piece of work ran inside: an `enterWith()` in one child's synchronous part
   * would otherwise leak into the next child run in the same capture.
   */
  restore(): void {
    const { keys, values } = this;
    for (let i = 0; i < keys.length; i++) {
      if ((this as unknown as Bag)[keys[i]] !== values[i]) (this as unknown as Bag)[keys[i]] = values[i];
    }
  }
}
