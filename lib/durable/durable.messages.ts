import { describeValue, safeString } from '../utils/describe.js';

/** Message factories of durable tasks, side by side. */
export const where = (className: string, method: string) => `${className}.${method}()`;

const list = (names: Iterable<string>) => [...names].map((n) => JSON.stringify(n)).join(', ') || '(none)';

export const DUPLICATE_HANDLER = (task: string, first: string, second: string) =>
  `Duplicate @TaskHandler("${task}") on ${first} and ${second}. Each task name has one handler: rename one of them.`;

export const REQUEST_SCOPED_HANDLER = (task: string, at: string, className: string) =>
  `Cannot register @TaskHandler("${task}") on ${at}: ${className} is request-scoped (or depends on a request-scoped ` +
  'provider), so there is no instance to run the task on outside a request. Move the handler to a singleton ' +
  'provider and inject what it needs there (e.g. through ModuleRef.resolve()).';

export const INVALID_TASK_NAME = (at: string, name: unknown) =>
  `Invalid task name ${describeValue(name)} in @TaskHandler on ${at}: expected a non-empty string without ":" ` +
  '(it names a BullMQ queue), e.g. @TaskHandler("newsletter.send").';

export const INVALID_HANDLER_OPTION = (at: string, option: string, expected: string, got: unknown) =>
  `Invalid @TaskHandler option "${option}" on ${at}: expected ${expected}, got ${describeValue(got)}.`;

export const UNKNOWN_TASK = (task: string, known: Iterable<string>) =>
  `Unknown durable task ${JSON.stringify(safeString(task))}: no @TaskHandler has that name in this application. ` +
  `Known tasks: ${list(known)}.`;

export const INVALID_TASK_ARG = (task: unknown) =>
  `Invalid durable task name ${describeValue(task)}: expected the non-empty name of a @TaskHandler.`;

export const INVALID_PAYLOAD = (task: string, path: string, what: string) =>
  `Cannot start durable task "${task}": ${path} is ${what}, which JSON cannot carry to the instance that runs it. ` +
  'Pass plain data (objects, arrays, strings, finite numbers, booleans, null), e.g. ids instead of instances.';

export const UNKNOWN_CHILD_OPTION = (task: string, option: string, allowed: string[]) =>
  `Cannot start durable task "${task}": unknown option ${JSON.stringify(safeString(option))}. Allowed: ${allowed.join(', ')}.`;

const bytes = (n: number) => `${n.toLocaleString('en-US')} bytes`;

export const PAYLOAD_TOO_LARGE = (task: string, size: number, limit: number) =>
  `Cannot start durable task "${task}": its payload is ${bytes(size)} of JSON, over durable.maxPayloadSize ` +
  `(${bytes(limit)}). Store large data elsewhere (a database, object storage) and pass its key.`;

export const RESULT_TOO_LARGE = (task: string, size: number, limit: number) =>
  `Durable task "${task}" returned a result of ${bytes(size)} of JSON, over durable.maxPayloadSize ` +
  `(${bytes(limit)}). Store large results elsewhere and return their key.`;

export const SHUT_DOWN = () => 'DurableSupervisor is shut down (the application is closing): nothing was started.';

export const INVALID_CHILD_ID = (id: unknown) =>
  `Invalid durable child id ${describeValue(id)}: expected the non-empty id a start resolved with.`;

export const AMBIGUOUS_CHILD_ID = (id: string, tasks: string[]) =>
  `Cannot terminate durable child ${JSON.stringify(safeString(id))}: children of ${list(tasks)} have that id ` +
  '(ids are per task name). Say which: terminateChild(id, task).';

export const INVALID_CHILD_OPTION = (task: string, option: string, expected: string, got: unknown) =>
  `Cannot start durable task "${task}": invalid option "${option}": expected ${expected}, got ${describeValue(got)}.`;

/** What a call that needs Redis was doing when it could not connect at all (nothing was sent, nothing changed). */
export const NOT_REACHED = (op: StoreOperation, task: string, ms: number, cause: string) => {
  const unreachable = `could not reach Redis: no connection within ${ms} ms (last connection error: ${cause}), so the command was not sent`;
  const of = task === '*' ? 'the durable task names' : `durable task "${task}"`;
  switch (op) {
    case 'start':
      return `Durable task "${task}" was not stored: ${unreachable}. Start it again once Redis is reachable.`;
    case 'list':
      return `Cannot list the durable children (reading ${of}): ${unreachable}.`;
    case 'terminate':
      return `Cannot terminate the durable child (reading ${of}): ${unreachable}. It may still run: try again later.`;
    case 'await':
      return `Cannot read the outcome of ${of}: ${unreachable}. The task is not affected: ask again later.`;
    case 'progress':
      return `Cannot store the progress of ${of}: ${unreachable}. The attempt goes on.`;
    case 'ping':
      return `Durable tasks: ${unreachable}.`;
  }
};

/** What a call that needs Redis was doing when Redis did not answer (each says what the caller can rely on). */
export type StoreOperation = 'start' | 'list' | 'terminate' | 'await' | 'progress' | 'ping';

export const STORE_UNAVAILABLE = (op: StoreOperation, task: string, ms: number, cause: string) => {
  const noAnswer = `Redis did not answer within ${ms} ms (durable.storeTimeout): ${cause}.`;
  const of = task === '*' ? 'the durable task names' : `durable task "${task}"`;
  switch (op) {
    case 'start':
      return (
        `Durable task "${task}" may not have been stored: ${noAnswer} It may have been stored all the same (the ` +
        'answer was lost): start it again with the same opts.id so that it exists once, or return an error to the caller.'
      );
    case 'list':
      return `Cannot list the durable children (reading ${of}): ${noAnswer} Nothing was changed.`;
    case 'terminate':
      return `Cannot terminate the durable child (reading ${of}): ${noAnswer} It may still run: try again later.`;
    case 'await':
      return `Cannot read the outcome of ${of}: ${noAnswer} The task is not affected: ask again later.`;
    case 'progress':
      return `Cannot store the progress of ${of}: ${noAnswer} The attempt goes on.`;
    case 'ping':
      return `Durable tasks: ${noAnswer}`;
  }
};

export const CLUSTER_CONNECTION = () =>
  'Invalid ConcurrencyModule option "durable.connection": an ioredis Cluster is not supported; pass a ' +
  'redis:// URL, ioredis options or an ioredis client (its options are copied for each connection).';

export const NOT_CONFIGURED = () =>
  'Durable tasks are not configured: give ConcurrencyModule the option durable: { connection: process.env.REDIS_URL } ' +
  '(in forRoot({ ... }), or in the options your forRootAsync() factory returns).';

export const HANDLER_WITHOUT_DURABLE = (task: string, at: string, off: boolean) =>
  off
    ? `@TaskHandler(${JSON.stringify(task)}) on ${at} will not run: durable tasks are off (durable: false).`
    : `@TaskHandler(${JSON.stringify(task)}) on ${at} would never run: ConcurrencyModule has no "durable" option. Give ` +
      'it durable: { connection: process.env.REDIS_URL } (in forRoot({ ... }), or in the options your forRootAsync() ' +
      'factory returns), durable: false to switch durable tasks off on purpose (a warning instead of this error), or ' +
      'remove the decorator.';

export const BULLMQ_MISSING = (cause: string) =>
  `ConcurrencyModule option "durable" needs the package "bullmq" (npm install bullmq), which could not be loaded: ${cause}.`;

export const HANDLER_FAILED = (task: string, id: string, attempt: number, cause: string, final: boolean) =>
  `Durable task "${task}" (${id}) attempt ${attempt} failed${final ? '' : ', will run again'}: ${cause}`;

export const RESULT_NOT_JSON = (task: string, path: string, what: string) =>
  `Durable task "${task}" returned a result whose ${path} is ${what}, which JSON cannot carry to the awaiter.`;

export const SHUTDOWN_HANDBACK = (task: string, id: string, ms: number) =>
  `Durable task "${task}" (${id}) still ran after shutdownTimeout (${ms} ms): aborted and handed back to the queue ` +
  'for another instance (this attempt does not count as a failure).';

/** BullMQ's reason for a job that stalled more than maxStalledCount times. */
export const BULLMQ_STALLED_REASON = 'job stalled more than allowable limit';

export const STALLED_TOO_OFTEN = (maxStalls: number, stalledTimeout: number) =>
  `its instance stopped renewing its lock more than durable.maxStalls (${maxStalls}) times: the instance died ` +
  `(crash, SIGKILL, process.exit, out of memory) or its event loop was blocked longer than durable.stalledTimeout ` +
  `(${stalledTimeout} ms), by this handler or by another one on the same instance. Run CPU-bound work on worker ` +
  'threads (workerFn) or in another process.';
