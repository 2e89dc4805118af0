import { AsyncLocalStorage, AsyncResource, executionAsyncResource } from 'node:async_hooks';

type Bag = Record<symbol, unknown>;

/** How Node (up to 22 by default) keeps an `AsyncLocalStorage` value on the running resource. */
const STORE_KEY = 'kResourceStore';

let resourceStores: boolean | undefined;

/**
 * Bumped whenever an `AsyncLocalStorage` starts or stops taking part in async context (its first `run()` or
 * `enterWith()`, `disable()`, `exit()`): a capture's keys cannot see a storage entered for the first time after it was
 * made, nor one set aside by `exit()`, so a capture made before such a change never matches after it.
 */
let storagesEpoch = 0;

type Storage = { enabled?: boolean; _enable?: (this: Storage) => void; disable: (this: Storage) => void };

/** Counts the changes above by wrapping Node's own `_enable()`/`disable()`; false when this Node has no `_enable()`. */
function watchStorages(): boolean {
  const proto = AsyncLocalStorage.prototype as unknown as Storage;
  const enable = proto._enable;
  const disable = proto.disable;
  if (typeof enable !== 'function' || typeof disable !== 'function') return false;
  proto._enable = function (this: Storage) {
    if (this.enabled !== true) storagesEpoch++;
    return enable.call(this);
  };
  proto.disable = function (this: Storage) {
    if (this.enabled === true) storagesEpoch++;
    return disable.call(this);
  };
  return true;
}

/**
 * Whether `AsyncLocalStorage` keeps its values as properties of the running async resource (Node 20 and 22), which
 * `als.run()` and `enterWith()` change in place. Node's async context frames (the default from Node 24) do not: there
 * no cheap comparison is possible and every start captures its own context. Probed once, on first use.
 */
function storesOnResources(): boolean {
  if (resourceStores !== undefined) return resourceStores;
  if (!watchStorages()) return (resourceStores = false);
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
  /** `storagesEpoch` when captured, and when `restore()` last looked for storages first entered inside. */
  private readonly epoch: number;
  private restoredEpoch: number;

  constructor() {
    super('nestjs-concurrency', { requireManualDestroy: true });
    this.origin = executionAsyncResource();
    this.comparable = storesOnResources();
    this.epoch = this.restoredEpoch = storagesEpoch;
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
    if (!this.comparable || this.epoch !== storagesEpoch) return false;
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
    const bag = this as unknown as Bag;
    for (let i = 0; i < keys.length; i++) if (bag[keys[i]] !== values[i]) bag[keys[i]] = values[i];
    if (this.restoredEpoch === storagesEpoch) return;
    // A storage may have been entered for the first time inside: gone again for the next piece of work.
    this.restoredEpoch = storagesEpoch;
    for (const key of Object.getOwnPropertySymbols(this)) {
      if (key.description === STORE_KEY && !keys.includes(key)) delete bag[key];
    }
  }
}
