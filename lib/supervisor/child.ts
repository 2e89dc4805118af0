import type { TaskContext } from './interfaces/task.interface.js';
import type { ChildRef } from './interfaces/child.interface.js';
import { QUEUED } from './supervisor.constants.js';

/**
 * @internal One attempt of one supervised child: the supervisor's record, the `TaskContext` handed to the function
 * and the `ChildRef` returned by `startChild()`, all in one small object. A restart creates a new record with the same
 * `seq` (so an old attempt's `ctx.signal` stays its own). The id string and the `AbortController` are built only when
 * someone asks for them.
 */
export class Child implements TaskContext, ChildRef {
  state = QUEUED;
  /** Why the supervisor stopped it (`'terminated'`, `'shutdown'`), or undefined. */
  stopping: string | undefined = undefined;
  controller: AbortController | undefined = undefined;
  timer: ReturnType<typeof setTimeout> | undefined = undefined;
  /** Epoch ms when this attempt started running; 0 while queued. */
  startedAt = 0;
  /** async()/startNow(): settles the Task; their failures are not logged by the supervisor. */
  resolve: ((value: unknown) => void) | undefined = undefined;
  reject: ((reason: unknown) => void) | undefined = undefined;
  /** terminateChild() callers waiting for this attempt to stop. */
  waiters: (() => void)[] | undefined = undefined;
  /** Restart times within the intensity window, and the last failure (restartable children only). */
  restartTimes: number[] | undefined = undefined;
  lastError: unknown = undefined;
  #id: string | undefined = undefined;

  constructor(
    readonly prefix: string,
    readonly seq: number,
    readonly fn: (ctx: TaskContext) => unknown,
    readonly name: string | undefined,
    readonly restart: number,
    readonly timeout: number,
    readonly attempt: number,
  ) {}

  get id(): string {
    return (this.#id ??= this.prefix + this.seq);
  }

  get signal(): AbortSignal {
    return (this.controller ??= new AbortController()).signal;
  }
}
