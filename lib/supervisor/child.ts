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
}

/**
 * @internal One attempt of one supervised child: the supervisor's record, the `TaskContext` handed to the function
 * and a member of the supervisor's list of running children, in one small object. A restart creates a new record with
 * the same `seq`, so an old attempt's `ctx.signal` stays its own. The id string and the `AbortController` are built
 * only when someone asks for them.
 */
export class Child implements TaskContext, ChildRef {
  state = QUEUED;
  /** Epoch ms when this attempt started running; 0 while queued. */
  startedAt = 0;
  controller: AbortController | undefined = undefined;
  ext: ChildExtras | undefined = undefined;
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

/** @internal What `startChild()` returns for a child that has no record yet (it gets one when it starts). */
export class ChildHandle implements ChildRef {
  constructor(
    private readonly prefix: string,
    private readonly seq: number,
  ) {}

  get id(): string {
    return this.prefix + this.seq;
  }
}
