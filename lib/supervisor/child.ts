import type { Span } from '@opentelemetry/api';
import type { ContextCapture } from '../observability/tracing/async-context.js';
import type { ChildRef } from './interfaces/child.interface.js';
import type { TaskContext } from './interfaces/task.interface.js';
import { QUEUED } from './supervisor.constants.js';

/** @internal A child's options after validation, shared by all its attempts (one shared object when none given). */
export interface ChildSpec {
  readonly name: string | undefined;
  readonly restart: number;
  readonly timeout: number;
}

/** @internal What only some children need: a timeout timer, a `Task` to settle, restart history, waiters. */
export interface ChildExtras {
  timer?: ReturnType<typeof setTimeout>;
  resolve?: (value: unknown) => void;
  reject?: (reason: unknown) => void;
  /** `terminateChild()` callers waiting for this attempt to stop. */
  waiters?: (() => void)[];
  /** Restart times within the intensity window and the last failure (restartable children). */
  restartTimes?: number[];
  lastError?: unknown;
  /** This attempt's span, when the application traces. */
  span?: Span;
}

/**
 * @internal One attempt of one supervised child: the supervisor's record and a member of its list of running
 * children. A restart creates a new record with the same `seq`, so an old attempt's `ctx.signal` stays its own. The id
 * string and the `AbortController` are built only when someone asks for them. Never handed to users: the function
 * gets a `ChildContext`, `startChild()` returns a `ChildHandle`.
 */
export class Child {
  state = QUEUED;
  /** Epoch ms when this attempt started running; 0 while queued. */
  startedAt = 0;
  controller: AbortController | undefined = undefined;
  ext: ChildExtras | undefined = undefined;
  /** The async context of the code that started this child: every attempt runs in it. */
  scope: ContextCapture | undefined = undefined;
  prev: Child | undefined = undefined;
  next: Child | undefined = undefined;

  constructor(
    readonly prefix: string,
    readonly seq: number,
    readonly fn: (ctx: TaskContext) => unknown,
    readonly spec: ChildSpec,
    readonly attempt: number,
  ) {}

  get id(): string {
    return this.prefix + this.seq;
  }

  get signal(): AbortSignal {
    return (this.controller ??= new AbortController()).signal;
  }
}

/**
 * @internal The `TaskContext` handed to a child's function: a narrow view of its record (no access to the function,
 * the controller or other children), with the same lazy id and signal.
 */
export class ChildContext implements TaskContext {
  readonly #child: Child;

  constructor(child: Child) {
    this.#child = child;
  }

  get id(): string {
    return this.#child.id;
  }

  get attempt(): number {
    return this.#child.attempt;
  }

  get signal(): AbortSignal {
    return this.#child.signal;
  }
}

/** @internal What `startChild()` returns for a child that has no record yet (it gets one when it starts). */
export class ChildHandle implements ChildRef {
  readonly #prefix: string;
  readonly #seq: number;

  constructor(prefix: string, seq: number) {
    this.#prefix = prefix;
    this.#seq = seq;
  }

  get id(): string {
    return this.#prefix + this.#seq;
  }
}
