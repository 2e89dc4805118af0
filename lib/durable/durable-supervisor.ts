import { randomUUID } from 'node:crypto';
import { Inject, Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import type { Queue, QueueEvents } from 'bullmq';
import { Observable, Subject } from 'rxjs';
import { CONCURRENCY_OPTIONS } from '../concurrency.constants.js';
import { SupervisorShutdownError } from '../errors/supervisor-shutdown.error.js';
import { TaskAbortedError } from '../errors/task-aborted.error.js';
import { TaskTimeoutError } from '../errors/task-timeout.error.js';
import type { ResolvedConcurrencyOptions } from '../interfaces/concurrency-module-options.interface.js';
import type { SupervisorEvent } from '../supervisor/interfaces/child.interface.js';
import type { TaskOutcome } from '../supervisor/interfaces/task.interface.js';
import { checkTimeoutMs, MAX_TIMEOUT_MS } from '../supervisor/utils/timeout.util.js';
import { errorMessage, safeString } from '../utils/describe.js';
import { withTimeout } from '../utils/with-timeout.js';
import { DurableHandlers } from './durable-handlers.js';
import { DurableTask } from './durable-task.js';
import {
  BACKOFF_TYPE,
  CONTROL_QUEUE,
  DURABLE_BULLMQ,
  DURABLE_EVENT,
  DURABLE_SUPERVISOR,
  IDEMPOTENCY_KEY,
  TASKS_KEY,
  TERMINATE_CHANNEL,
  UNKNOWN_HANDLER_ATTEMPTS,
} from './durable.constants.js';
import {
  type BullMQModule,
  connectionOptions,
  cut,
  isConnected,
  keepErrorListener,
  rawClient,
} from './durable.loader.js';
import {
  BULLMQ_STALLED_REASON,
  AMBIGUOUS_CHILD_ID,
  INVALID_CHILD_ID,
  INVALID_CHILD_OPTION,
  INVALID_PAYLOAD,
  INVALID_TASK_ARG,
  NOT_CONFIGURED,
  NOT_REACHED,
  PAYLOAD_TOO_LARGE,
  SHUT_DOWN,
  STALLED_TOO_OFTEN,
  STORE_UNAVAILABLE,
  UNKNOWN_CHILD_OPTION,
  type StoreOperation,
  UNKNOWN_TASK,
} from './durable.messages.js';
import {
  DurableTaskError,
  DurableUnavailableError,
  InvalidPayloadError,
  UnknownTaskError,
} from './errors/durable.errors.js';
import type {
  DurableChildInfo,
  DurableChildOptions,
  DurableChildRef,
  ResolvedDurableOptions,
} from './interfaces/durable-options.interface.js';
import { fromJobId, MAX_CHILD_ID_LENGTH, toItemJobId, toJobId } from './utils/job-id.util.js';
import { toJson } from './utils/json-check.util.js';
import { ConcurrencyTracing } from '../observability/tracing/concurrency-tracing.js';
import { traceSend } from '../observability/tracing/durable-tracing.js';
import { LogThrottle } from './utils/log-throttle.util.js';
import { BatchEngine, type BatchSummary } from './batch/batch-engine.js';
import { BATCH_ITEM } from './batch/batch-item.util.js';
import type { DurableBatchOptions, DurableOutcome } from './batch/batch.interfaces.js';
import type { BatchRedis } from './batch/batch.scripts.js';
import type { DurableBatch } from './batch/durable-batch.js';

const CHILD_OPTIONS = ['id', 'delay', 'priority'];
const WAITING_STATES = new Set(['waiting', 'prioritized', 'delayed', 'waiting-children']);
const MAX_PRIORITY = 2_097_152;
/** `children()` lists at most this many children per task name and state. */
const CHILDREN_LIMIT = 1000;
/** Ids kept in `reported` at most: a `failed` event lost to a reconnect must not leave its id there for good. */
const REPORTED_LIMIT = 10_000;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The custom event a worker adds to a queue's event stream (see DurableWorkers). */
interface WorkerEventData {
  type: SupervisorEvent['type'];
  attempt: number;
  durationMs?: number;
  error?: string;
  final?: true;
}

/**
 * Fire and forget across instances and restarts (Oban, `Task.Supervisor` on remote nodes), on BullMQ: a start is a
 * job stored in Redis, run by a `@TaskHandler` on whichever instance (with workers) takes it. At least once: a task
 * whose instance dies mid-run is run again elsewhere, so make handlers idempotent.
 *
 * @publicApi
 */
@Injectable()
export class DurableSupervisor implements OnApplicationShutdown {
  /**
   * What happens to every durable child of the cluster (all instances sharing the Redis prefix): `started`,
   * `completed`, `failed`, `timeout`, `terminated`, `restarted`, `max-restarts`. Listening opens one Redis connection
   * per task name (BullMQ QueueEvents), on first subscription; they close when the last subscriber leaves.
   */
  readonly events: Observable<SupervisorEvent>;

  private readonly logger = new Logger('DurableSupervisor');
  private readonly throttle = new LogThrottle();
  private readonly queues = new Map<string, Queue>();
  private readonly queueEvents = new Map<string, QueueEvents>();
  /** The last connection error of each queue: what a call that could not reach Redis names. */
  private readonly connectionErrors = new WeakMap<Queue, string>();
  /** Task names this instance has added to the Redis set of names (once each). */
  private readonly registered = new Set<string>();
  private readonly subject = new Subject<SupervisorEvent>();
  /** Per task name, the event mapping runs in order (it may read the job for its attempt). */
  private readonly chains = new Map<string, Promise<void>>();
  /** Children whose final failure a worker already reported: BullMQ's own `failed` for them is skipped. */
  private readonly reported = new Set<string>();
  /** The `outcome()` calls still waiting: settled (rejected) at shutdown, so no awaiter hangs on a closed app. */
  private readonly pending = new Set<() => void>();
  private watching = false;
  /** The `watchAll()` of the current subscribers (the testing kit waits for it). */
  private watchingAll: Promise<void> | undefined;
  /** Subscribers of `events`: while there are any, every task name is watched. */
  private subscribers = 0;
  /** Per task name, the `outcome()` calls using its QueueEvents (closed once nobody needs it). */
  private readonly awaiting = new Map<string, number>();
  private closed = false;
  /** Children started from this instance (id -> task), kept only while a testing kit asks (`trackStarted()`). */
  private startedHere: Map<string, string> | undefined;
  /** Testing kit: QueueEvents read the stream from this time (ms), not from their first read. */
  private eventsSince: number | undefined;

  /** Durable map / settle / batch (lib/durable/batch). */
  private readonly batches = new BatchEngine({
    options: () => this.durable(),
    client: async () => (await this.controlClient()) as unknown as BatchRedis,
    queue: (task) => this.queue(task),
    store: (op, task, call) => this.store(op, task, call),
    register: (task) => this.register(task),
    terminate: (task, jobId) => this.store('terminate', task, () => this.publishTerminate(task, jobId)),
  });

  /** A PRODUCER span per start when the application traces. */
  @Inject(ConcurrencyTracing) private readonly tracing: ConcurrencyTracing | undefined;

  /** @internal Created by `ConcurrencyModule` when `durable` is given. */
  constructor(
    @Inject(CONCURRENCY_OPTIONS) private readonly options: ResolvedConcurrencyOptions,
    @Inject(DURABLE_BULLMQ) private readonly bullmq: BullMQModule | undefined,
    private readonly handlers: DurableHandlers,
  ) {
    this.events = new Observable<SupervisorEvent>((subscriber) => {
      const subscription = this.subject.subscribe(subscriber);
      this.subscribers++;
      if (!this.watching) {
        this.watching = true;
        this.watchingAll = this.watchAll();
      }
      return () => {
        subscription.unsubscribe();
        if (--this.subscribers > 0) return;
        // The last subscriber left: the connections opened for it go (those an awaiter still uses stay).
        this.watching = false;
        for (const task of [...this.queueEvents.keys()]) this.unwatchIfIdle(task);
      };
    });
  }

  /**
   * Stores a child of `task` with `payload` and resolves with its id once Redis holds it (never later, never
   * sooner): the `@TaskHandler` runs on whichever instance takes it. Rejects, storing nothing, for an unknown task
   * name (on an instance with workers), a payload JSON cannot carry (the path is named) or an option out of range;
   * with `DurableUnavailableError` when Redis does not answer within `durable.storeTimeout` (the child may then have
   * been stored: start it again with the same `opts.id` to be sure it exists once).
   */
  async startChild<P>(task: string, payload: P, opts?: DurableChildOptions): Promise<DurableChildRef> {
    const durable = this.durable();
    if (typeof task !== 'string' || task === '' || task.includes(':')) throw new TypeError(INVALID_TASK_ARG(task));
    const handler = this.handlers.byName.get(task);
    if (!handler && durable.workers) throw new UnknownTaskError(task, UNKNOWN_TASK(task, this.handlers.byName.keys()));
    checkChildOptions(task, opts);
    // What JSON.stringify really produces is checked and stored (a toJSON() runs once, here, in the caller's call).
    const checked = toJson(payload === undefined ? null : payload, 'payload');
    if (!('json' in checked)) {
      throw new InvalidPayloadError(task, checked.path, INVALID_PAYLOAD(task, checked.path, checked.what));
    }
    const size = Buffer.byteLength(checked.json);
    if (size > durable.maxPayloadSize) {
      throw new InvalidPayloadError(task, 'payload', PAYLOAD_TOO_LARGE(task, size, durable.maxPayloadSize));
    }
    const given = opts?.id;
    const id = given ?? randomUUID();
    const jobId = toJobId(id);
    const queue = this.queue(task);
    // Handed to BullMQ as the parsed copy of the checked text: it stringifies plain data, to the same text.
    const data: unknown = JSON.parse(checked.json);
    const record = given === undefined ? undefined : `${durable.prefix}:${IDEMPOTENCY_KEY}:${task}:${jobId}`;
    if (record !== undefined) {
      // Started within the idempotency window, whether or not the finished child is still kept: the same child.
      const seen = await this.store('start', task, async () => (await this.controlClient()).exists(record));
      if (seen) return { id, task, duplicate: true };
    }
    const { retention } = durable;
    await traceSend(this.tracing?.tracer, task, id, (telemetry) =>
      this.store('start', task, () =>
        queue.add(task, data, {
          jobId,
          // Finality is decided by the worker, from its own handler's policy (it throws UnrecoverableError past it).
          attempts: UNKNOWN_HANDLER_ATTEMPTS,
          backoff: { type: BACKOFF_TYPE },
          removeOnComplete: { count: retention.completed.count, age: Math.ceil(retention.completed.age / 1000) },
          removeOnFail: { count: retention.failed.count, age: Math.ceil(retention.failed.age / 1000) },
          delay: opts?.delay,
          priority: opts?.priority,
          telemetry, // the W3C trace context of the 'send' span, when tracing: not in the handler's payload
        }),
      ),
    );
    // The child is stored: nothing after this may fail the call (a retry without an id would run it twice).
    let duplicate = false;
    if (record !== undefined) {
      try {
        const first = await withTimeout(
          this.controlClient().then((client) => client.set(record, '1', 'PX', durable.idempotencyWindow, 'NX')),
          durable.storeTimeout,
          () => new Error('timeout'),
        );
        duplicate = first === null;
      } catch (error) {
        // The child exists: while BullMQ keeps it, its id dedupes on its own; the next start writes the record.
        this.logError('idempotency records', error);
      }
    }
    this.register(task);
    this.startedHere?.set(id, task);
    return { id, task, duplicate };
  }

  /**
   * `startChild()`, then a handle whose `await()`/`yield()` get the result from whichever instance ran the task
   * (Task.async across nodes). The result travels as JSON.
   */
  async async<P, R = unknown>(task: string, payload: P, opts?: DurableChildOptions): Promise<DurableTask<R>> {
    const ref = await this.startChild(task, payload, opts);
    return new DurableTask<R>(ref.id, task, this);
  }

  /**
   * Runs `task` once per input on the cluster's workers (`Task.async_stream` across instances) and resolves with the
   * results in input order. Fail-fast: the first item that fails for good (after its handler's restarts) rejects the
   * call with its error, items not started never run, running ones have their `ctx.signal` aborted wherever they run.
   * `opts.signal` aborting cancels the batch and rejects with its reason. Bad input (unknown task, an input JSON cannot
   * carry, an option out of range) is refused before anything is stored.
   */
  async map<I, O>(task: string, inputs: Iterable<I> | AsyncIterable<I>, opts?: DurableBatchOptions): Promise<O[]> {
    const batch = await this.batch<I, O>(task, inputs, { ...opts, failFast: true });
    return untilSignal(batch.await(), opts?.signal);
  }

  /** As `map()`, but never rejects for an item: one outcome per input, in input order, once every item finished. */
  async settle<I, O>(
    task: string,
    inputs: Iterable<I> | AsyncIterable<I>,
    opts?: DurableBatchOptions,
  ): Promise<DurableOutcome<O>[]> {
    const batch = await this.batch<I, O>(task, inputs, opts);
    return untilSignal(batch.settle(), opts?.signal);
  }

  /**
   * Stores one durable item per input (in chunks: the caller's memory stays flat for any number of inputs from an
   * iterable) and resolves with the batch once every item is stored. The batch advances in Redis without the caller;
   * `getBatch(id)` re-attaches from any instance. The same `opts.id` returns the same batch, storing nothing twice.
   */
  async batch<I, O>(
    task: string,
    inputs: Iterable<I> | AsyncIterable<I>,
    opts?: DurableBatchOptions,
  ): Promise<DurableBatch<O>> {
    const durable = this.durable();
    if (typeof task !== 'string' || task === '' || task.includes(':')) throw new TypeError(INVALID_TASK_ARG(task));
    if (!this.handlers.byName.has(task) && durable.workers) {
      throw new UnknownTaskError(task, UNKNOWN_TASK(task, this.handlers.byName.keys()));
    }
    return this.batches.create<O>(task, inputs, opts, false);
  }

  /** @internal The newest `limit` batches with their progress, and how many are indexed (for the dashboard). */
  async batchesPreview(limit: number): Promise<{ total: number; batches: BatchSummary[] }> {
    this.durable();
    return this.batches.list(limit);
  }

  /** The batch `id` as stored in Redis (from any instance), or undefined when there is none (or it expired). */
  async getBatch<O>(id: string): Promise<DurableBatch<O> | undefined> {
    this.durable();
    if (typeof id !== 'string' || id === '') throw new TypeError(INVALID_CHILD_ID(id));
    return this.batches.get<O>(id);
  }

  /**
   * The children of every instance that have not finished: waiting, delayed (or backing off) and running. Reads
   * only the fields it returns (never a payload): one range per state, then one pipeline of HMGETs per task name.
   */
  async children(): Promise<DurableChildInfo[]> {
    this.durable();
    const names = await this.knownNames('list');
    const lists = await Promise.all(
      names.map(async (task) => {
        const queue = this.queue(task);
        return this.store('list', task, async () => {
          const ranges = await Promise.all([
            queue.getRanges(['active'], 0, CHILDREN_LIMIT - 1),
            queue.getRanges(['waiting', 'prioritized'], 0, CHILDREN_LIMIT - 1),
            queue.getRanges(['delayed'], 0, CHILDREN_LIMIT - 1),
          ]);
          const statuses: Array<DurableChildInfo['status']> = ['running', 'waiting', 'delayed'];
          const listed = ranges.flatMap((ids, i) => ids.map((jobId) => ({ jobId, status: statuses[i]! })));
          if (listed.length === 0) return [];
          const pipeline = (await this.controlClient()).pipeline();
          for (const { jobId } of listed)
            pipeline.hmget(queue.toKey(jobId), 'attemptsMade', 'processedOn', 'timestamp');
          const replies = (await pipeline.exec()) ?? [];
          const children: DurableChildInfo[] = [];
          listed.forEach(({ jobId, status }, i) => {
            const [error, fields] = replies[i] ?? [new Error('no reply')];
            if (error) throw error;
            const [attemptsMade, processedOn, timestamp] = fields as Array<string | null>;
            if (timestamp === null) return; // finished and removed between the two reads
            children.push({
              id: fromJobId(jobId),
              task,
              status,
              attempt: Number(attemptsMade ?? 0) + 1,
              ...(status === 'running' && processedOn ? { startedAt: new Date(Number(processedOn)) } : {}),
            });
          });
          return children;
        });
      }),
    );
    return lists.flat();
  }

  /**
   * Stops the child `id` wherever it is: a waiting or delayed child is removed; a running one has its `ctx.signal`
   * aborted (a `TaskAbortedError`) on the instance that runs it, and its attempt fails without restart. Resolves
   * true once it has stopped, false if there is no such unfinished child (or it was still running after
   * `durable.stalledTimeout`: its instance does not answer). Ids are per task name: an id that names children of
   * two task names is refused, naming them; pass `task` then.
   */
  async terminateChild(id: string, task?: string): Promise<boolean> {
    const durable = this.durable();
    if (typeof id !== 'string' || id === '') throw new TypeError(INVALID_CHILD_ID(id));
    if (task !== undefined && (typeof task !== 'string' || task === '' || task.includes(':'))) {
      throw new TypeError(INVALID_TASK_ARG(task));
    }
    const jobId = toJobId(id);
    const item = /^(.+)#(0|[1-9]\d*)$/s.exec(id);
    const itemJobId = item ? toItemJobId(item[1]!, Number(item[2])) : undefined;
    const names = task === undefined ? await this.knownNames('terminate') : [task];
    const found = (
      await Promise.all(
        names.map(async (name) => {
          // A child started with this id first; else the batch item it names ("<batch id>#<index>").
          const job = await this.store('terminate', name, async () => {
            const queue = this.queue(name);
            return (await queue.getJob(jobId)) ?? (itemJobId === undefined ? undefined : queue.getJob(itemJobId));
          });
          return job ? { name, job } : undefined;
        }),
      )
    ).filter((hit) => hit !== undefined);
    // One id under two task names (ids are per task name): stopping either would be a guess.
    if (found.length > 1)
      throw new Error(
        AMBIGUOUS_CHILD_ID(
          id,
          found.map((hit) => hit.name),
        ),
      );
    for (const { name, job } of found) {
      const deadline = Date.now() + durable.stalledTimeout + durable.storeTimeout;
      let asked = 0;
      for (;;) {
        const state = await this.store('terminate', name, () => job.getState());
        if (WAITING_STATES.has(state)) {
          try {
            await this.store('terminate', name, () => job.remove());
            if (job.name === BATCH_ITEM) await this.batches.itemRemoved(name, jobId);
            return true;
          } catch {
            // Taken by a worker meanwhile: terminate it there. Or a removal that keeps failing: not past the deadline,
            // and not at the speed of Redis's answers.
            if (Date.now() > deadline) return false;
            await sleep(20);
            continue;
          }
        }
        if (state !== 'active') return asked > 0;
        if (Date.now() > deadline) return false;
        // Asked again while it runs: the request may reach its instance before the job is tracked there.
        if (Date.now() - asked >= 500) {
          asked = Date.now();
          await this.store('terminate', name, () => this.publishTerminate(name, jobId));
        }
        await sleep(20);
      }
    }
    return false;
  }

  /** @internal DurableTaskWaiter: the outcome of `id`, or null when it has not finished within `timeoutMs`. */
  async outcome<R>(task: string, id: string, timeoutMs: number): Promise<TaskOutcome<R> | null> {
    checkTimeoutMs(`DurableTask ${id}`, timeoutMs);
    const durable = this.durable();
    this.awaiting.set(task, (this.awaiting.get(task) ?? 0) + 1);
    try {
      return await this.waitOutcome<R>(task, id, timeoutMs, durable);
    } finally {
      const left = (this.awaiting.get(task) ?? 1) - 1;
      if (left > 0) this.awaiting.set(task, left);
      else this.awaiting.delete(task);
      this.unwatchIfIdle(task);
    }
  }

  private async waitOutcome<R>(
    task: string,
    id: string,
    timeoutMs: number,
    durable: ResolvedDurableOptions,
  ): Promise<TaskOutcome<R> | null> {
    const events = this.watch(task);
    if (!events) throw this.unavailable('await', task, 'QueueEvents could not be created');
    await withTimeout(events.waitUntilReady(), durable.storeTimeout, () =>
      this.unavailable('await', task, 'QueueEvents'),
    );
    if (this.closed) throw shuttingDown(task, id);
    const queue = this.queue(task);
    const jobId = toJobId(id);
    return new Promise<TaskOutcome<R> | null>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      let poller: ReturnType<typeof setInterval> | undefined;
      let settled = false;
      const settle = () => {
        if (settled) return false;
        settled = true;
        this.pending.delete(abort);
        clearTimeout(timer);
        clearInterval(poller);
        events.off(`completed:${jobId}` as 'completed', onCompleted as never);
        events.off(`failed:${jobId}` as 'failed', onFailed as never);
        events.off(`removed:${jobId}` as 'removed', onRemoved);
        return true;
      };
      const finish = (outcome: TaskOutcome<R> | null) => {
        if (settle()) resolve(outcome);
      };
      const abort = () => {
        if (settle()) reject(shuttingDown(task, id));
      };
      this.pending.add(abort);
      const onCompleted = (args: { returnvalue: unknown }) =>
        finish({ status: 'fulfilled', value: args.returnvalue as R });
      const onFailed = (args: { failedReason: string }) =>
        finish({ status: 'rejected', reason: new DurableTaskError(task, id, this.reason(args.failedReason)) });
      const onRemoved = () => finish({ status: 'rejected', reason: new TaskAbortedError(task, 'terminated') });
      events.on(`completed:${jobId}` as 'completed', onCompleted as never);
      events.on(`failed:${jobId}` as 'failed', onFailed as never);
      events.on(`removed:${jobId}` as 'removed', onRemoved);
      if (timeoutMs !== Infinity) timer = setTimeout(() => finish(null), timeoutMs);
      // Already finished before we listened, or an event lost to a reconnect: read the state (now, then each second).
      const check = async () => {
        if (settled) return;
        try {
          // The state first: a job read before it completes would carry no return value yet.
          const state = await queue.getJobState(jobId);
          if (state === 'unknown') {
            return finish({ status: 'rejected', reason: new DurableTaskError(task, id, 'no such child') });
          }
          if (state !== 'completed' && state !== 'failed') return;
          const job = await queue.getJob(jobId);
          if (!job) return;
          if (state === 'completed') finish({ status: 'fulfilled', value: job.returnvalue as R });
          else onFailed({ failedReason: job.failedReason });
        } catch {
          // Redis unavailable: the next check or the event will tell
        }
      };
      void check();
      poller = setInterval(() => void check(), 1000);
    });
  }

  /**
   * @internal For the testing kit's `idle()`: from now on, remember the children started from this instance (only
   * then: an app in production would keep an id per task for good).
   */
  trackStarted(): void {
    this.startedHere ??= new Map();
    // A QueueEvents reads only what is added once its first XREAD runs: for a test, every event from now on counts.
    this.eventsSince ??= Date.now();
  }

  /** @internal For the testing kit: true when durable tasks are configured (so `events` can be listened to). */
  get configured(): boolean {
    return this.options.durable !== undefined && this.bullmq !== undefined;
  }

  /**
   * @internal For the testing kit: resolves once every task name known now is watched by a connected QueueEvents
   * (events added from then on reach `events`). Never rejects; gives up after `durable.storeTimeout` per step.
   */
  async watchReady(): Promise<void> {
    if (!this.configured || !this.watching) return;
    const ms = this.options.durable!.storeTimeout;
    await withTimeout(this.watchingAll ?? Promise.resolve(), ms, () => new Error('timeout')).catch(() => undefined);
    await Promise.allSettled(
      [...this.queueEvents.values()].map((events) =>
        withTimeout(events.waitUntilReady(), ms, () => new Error('timeout')),
      ),
    );
  }

  /**
   * @internal The children started from this instance since `trackStarted()`: those that have not finished
   * (waiting, delayed, running or backing off, on any instance), and those found finished by this call (then
   * forgotten), with their state and attempts made. Read from Redis in one pipeline (two commands per child). Empty
   * when durable tasks are not configured.
   */
  async unfinishedStarted(): Promise<{ left: StartedChild[]; finished: FinishedChild[] }> {
    const started = this.startedHere;
    if (started === undefined || started.size === 0 || !this.configured) return { left: [], finished: [] };
    const entries = [...started];
    const replies = await this.store('list', '*', async () => {
      const pipeline = (await this.controlClient()).pipeline();
      for (const [id, task] of entries) {
        const queue = this.queue(task);
        const jobId = toJobId(id);
        pipeline.hmget(queue.toKey(jobId), 'finishedOn', 'attemptsMade', 'timestamp');
        pipeline.zscore(queue.toKey('completed'), jobId);
      }
      return (await pipeline.exec()) ?? [];
    });
    const left: StartedChild[] = [];
    const finished: FinishedChild[] = [];
    entries.forEach(([id, task], i) => {
      const [fieldsError, fields] = replies[2 * i] ?? [new Error('no reply')];
      const [, completedScore] = replies[2 * i + 1] ?? [];
      if (fieldsError) throw this.unavailable('list', task, errorMessage(fieldsError));
      const [finishedOn, attemptsMade, timestamp] = fields as Array<string | null>;
      if (timestamp === null) {
        started.delete(id); // gone (removed by retention or terminated): nothing to wait for
      } else if (finishedOn !== null) {
        started.delete(id);
        const state = completedScore === null ? 'failed' : 'completed';
        finished.push({ id, task, state, attempts: Number(attemptsMade ?? 0) });
      } else {
        left.push({ id, task });
      }
    });
    return { left, finished };
  }

  /** Lifecycle hook: closes the queues and event listeners (the workers drained before, in `beforeApplicationShutdown`). */
  async onApplicationShutdown(): Promise<void> {
    this.closed = true;
    // Taken first: the subscribers and awaiters that leave below find nothing left to close on their own.
    const all = [...this.queueEvents.values(), ...this.queues.values()];
    this.queueEvents.clear();
    this.queues.clear();
    // Awaiters of outcomes would poll a closed queue for ever (and keep the process alive): tell them now.
    for (const abort of this.pending) abort(); // each removes itself: a Set iterates on safely
    this.subject.complete();
    // A connection that is down cannot send QUIT: it is cut at once; one that is up gets storeTimeout to close.
    const ms = this.options.durable?.storeTimeout ?? 2000;
    await Promise.allSettled(
      all.map(async (item) => {
        if (await isConnected(item)) {
          try {
            return await withTimeout(item.close(), ms, () => new Error('close timed out'));
          } catch {
            // cut below
          }
        }
        await cut(item);
      }),
    );
  }

  private durable(): ResolvedDurableOptions {
    const durable = this.options.durable;
    if (!durable || !this.bullmq) throw new Error(NOT_CONFIGURED());
    if (this.closed) {
      const error = new SupervisorShutdownError(DURABLE_SUPERVISOR);
      error.message = SHUT_DOWN();
      throw error;
    }
    return durable;
  }

  /**
   * @internal `ConcurrencyHealthIndicator`: resolves once Redis answers a PING on the producer connection, rejects
   * with `DurableUnavailableError` after `durable.storeTimeout`.
   */
  ping(): Promise<void> {
    return this.store('ping', CONTROL_QUEUE, async () => {
      await (await this.controlClient()).ping();
    });
  }

  /** A Redis call bounded by `durable.storeTimeout`; any failure becomes a `DurableUnavailableError`. */
  private async store<T>(op: StoreOperation, task: string, call: () => Promise<T>): Promise<T> {
    const ms = this.options.durable!.storeTimeout;
    // The connection the call goes through first. Its offline queue is off: while it is not ready, nothing is sent.
    const owner = this.queue(task === '*' ? CONTROL_QUEUE : task);
    const wasUp = await isConnected(owner);
    try {
      return await withTimeout(call(), ms, () => this.unavailable(op, task, 'timeout'));
    } catch (error) {
      if (!wasUp && !(await isConnected(owner))) {
        // Never connected during the call (refused, unreachable): the command was never sent, so nothing changed.
        const cause = this.connectionErrors.get(owner) ?? 'no connection';
        throw new DurableUnavailableError(task, NOT_REACHED(op, task, ms, cause), error);
      }
      if (error instanceof DurableUnavailableError) throw error;
      throw new DurableUnavailableError(task, STORE_UNAVAILABLE(op, task, ms, errorMessage(error)), error);
    }
  }

  private unavailable(op: StoreOperation, task: string, cause: string): DurableUnavailableError {
    const ms = this.options.durable!.storeTimeout;
    return new DurableUnavailableError(task, STORE_UNAVAILABLE(op, task, ms, cause));
  }

  /** The producer side of a task name: one BullMQ Queue, failing fast while Redis is away (TRAPS: BullMQ). */
  private queue(task: string): Queue {
    let queue = this.queues.get(task);
    if (!queue) {
      const durable = this.options.durable!;
      queue = new this.bullmq!.Queue(task, {
        connection: connectionOptions(durable.connection, { enableOfflineQueue: false, maxRetriesPerRequest: 1 }),
        prefix: durable.prefix,
      });
      const created = queue;
      queue.on('error', (error) => {
        this.connectionErrors.set(created, errorMessage(error));
        this.logError(`queue ${task}`, error);
      });
      keepErrorListener(queue);
      this.queues.set(task, queue);
    }
    return queue;
  }

  private logError(what: string, error: unknown): void {
    if (this.throttle.allow(what)) this.logger.error(`Durable tasks: Redis error on ${what}: ${errorMessage(error)}`);
  }

  /**
   * Adds `task` to the Redis set of task names on every start (one SADD, not awaited): a Redis that lost its data
   * (FLUSHALL, an empty replica) learns the name again with the next start. Never throws: it runs after a child was
   * stored.
   */
  private register(task: string): void {
    this.registered.add(task);
    this.controlClient()
      .then((client) => client.sadd(`${this.options.durable!.prefix}:${TASKS_KEY}`, task))
      .catch((error: unknown) => this.logError('task names', error));
    if (this.watching) this.watch(task);
  }

  private controlClient() {
    return rawClient(this.queue(CONTROL_QUEUE));
  }

  private async publishTerminate(task: string, id: string): Promise<void> {
    const client = await this.controlClient();
    await client.publish(`${this.options.durable!.prefix}:${TERMINATE_CHANNEL}`, JSON.stringify({ task, id }));
  }

  /** Task names of the cluster: handlers found here, names started here, names any instance stored in Redis. */
  /**
   * @internal For the dashboard: the children that failed for good most recently, newest first (at most
   * `perTask` per task name, `total` in all), cluster-wide. Reads only the fields it returns (never a payload): one
   * range of the failed set, then one pipeline of HMGETs per task name, each bounded by `storeTimeout`.
   */
  async recentFailures(
    perTask = 20,
    total = 50,
  ): Promise<Array<{ id: string; task: string; attempt: number; failedAt: number; error: string }>> {
    this.durable();
    const names = await this.knownNames('list');
    const lists = await Promise.all(
      names.map((task) => {
        const queue = this.queue(task);
        return this.store('list', task, async () => {
          // The failed set is scored by finish time: a range from 0 starts with the newest.
          const ids = await queue.getRanges(['failed'], 0, perTask - 1);
          if (ids.length === 0) return [];
          const pipeline = (await this.controlClient()).pipeline();
          for (const jobId of ids) pipeline.hmget(queue.toKey(jobId), 'failedReason', 'attemptsMade', 'finishedOn');
          const replies = (await pipeline.exec()) ?? [];
          return ids.flatMap((jobId, i) => {
            const [error, fields] = replies[i] ?? [new Error('no reply')];
            if (error) throw error;
            const [failedReason, attemptsMade, finishedOn] = fields as Array<string | null>;
            if (finishedOn === null) return []; // removed between the two reads
            return [
              {
                id: fromJobId(jobId),
                task,
                attempt: Math.max(1, Number(attemptsMade ?? 0)),
                failedAt: Number(finishedOn),
                error: failedReason ?? '',
              },
            ];
          });
        });
      }),
    );
    return lists
      .flat()
      .sort((a, b) => b.failedAt - a.failedAt)
      .slice(0, total);
  }

  /**
   * @internal For the dashboard: per task name, how many children wait (waiting, delayed, backing off), run, and
   * failed for good (failed children are kept 24 h, 10,000 per task name at most), cluster-wide. One count call per
   * task name, bounded by `storeTimeout`.
   */
  async queueCounts(): Promise<Array<{ task: string; waiting: number; running: number; failed: number }>> {
    this.durable();
    const names = await this.knownNames('list');
    return Promise.all(
      names.map(async (task) => {
        const counts = await this.store('list', task, () =>
          this.queue(task).getJobCounts('waiting', 'prioritized', 'delayed', 'active', 'failed'),
        );
        const n = (state: string) => counts[state] ?? 0;
        return {
          task,
          waiting: n('waiting') + n('prioritized') + n('delayed'),
          running: n('active'),
          failed: n('failed'),
        };
      }),
    );
  }

  private async knownNames(op: StoreOperation): Promise<string[]> {
    const names = new Set([...this.handlers.byName.keys(), ...this.registered]);
    const stored = await this.store(op, '*', async () => {
      const client = await this.controlClient();
      return client.smembers(`${this.options.durable!.prefix}:${TASKS_KEY}`);
    });
    for (const name of stored) names.add(name);
    return [...names];
  }

  /** A failure reason as stored in Redis, with BullMQ's own stall reason said in full. */
  private reason(failedReason: unknown): string {
    const text = safeString(failedReason);
    if (text !== BULLMQ_STALLED_REASON) return text;
    const durable = this.options.durable!;
    return STALLED_TOO_OFTEN(durable.maxStalls, durable.stalledTimeout);
  }

  /** Never rejects (it runs unawaited): a name it cannot watch is logged (`watch()`). */
  private async watchAll(): Promise<void> {
    let names: string[];
    try {
      names = await this.knownNames('list');
    } catch (error) {
      this.logError('events', error);
      names = [...this.handlers.byName.keys(), ...this.registered];
    }
    if (!this.watching) return; // every subscriber left meanwhile
    for (const task of names) this.watch(task);
  }

  /** Closes the QueueEvents of `task` (its blocking connection) when no subscriber and no awaiter needs it. */
  private unwatchIfIdle(task: string): void {
    if (this.watching || this.awaiting.has(task)) return;
    const events = this.queueEvents.get(task);
    if (!events) return;
    this.queueEvents.delete(task);
    this.chains.delete(task);
    void withTimeout(events.close(), 2000, () => new Error('close timed out')).catch((error: unknown) =>
      this.logError(`events of ${task}`, error),
    );
  }

  /**
   * The QueueEvents of a task name (one blocking connection), created on first need. Never throws: where BullMQ
   * refuses to create it, the error is logged and the result is undefined.
   */
  private watch(task: string): QueueEvents | undefined {
    let events = this.queueEvents.get(task);
    if (events) return events;
    if (this.closed) return undefined;
    const durable = this.options.durable!;
    try {
      events = new this.bullmq!.QueueEvents(task, {
        connection: connectionOptions(durable.connection, { maxRetriesPerRequest: null }),
        prefix: durable.prefix,
        ...(this.eventsSince === undefined ? {} : { lastEventId: `${this.eventsSince}-0` }),
      });
    } catch (error) {
      this.logError(`events of ${task}`, error);
      return undefined;
    }
    this.queueEvents.set(task, events);
    events.on('error', (error) => this.logError(`events of ${task}`, error));
    keepErrorListener(events);
    const on = (kind: string, map: (args: Record<string, string>) => Promise<SupervisorEvent | undefined>) =>
      events.on(kind as 'active', (args: unknown) => {
        if (!this.subject.observed) return;
        const previous = this.chains.get(task) ?? Promise.resolve();
        const next = previous.then(async () => {
          try {
            const event = await map(args as Record<string, string>);
            if (event) this.subject.next(event);
          } catch (error) {
            this.logError(`events of ${task}`, error);
          }
        });
        this.chains.set(task, next);
      });
    const base = (jobId: string, type: SupervisorEvent['type'], attempt: number): SupervisorEvent => ({
      type,
      supervisor: DURABLE_SUPERVISOR,
      childId: fromJobId(jobId),
      name: task,
      attempt,
    });
    // Read when the event is handled, so a failure may already be counted: attemptsMade + 1 is one too many then,
    // but attemptsStarted is not yet (the next attempt waits for its backoff); it counts hand-backs and stalls too,
    // which attemptsMade does not. The smaller of the two is the attempt of the event.
    const attemptOf = async (id: string) => {
      const job = await this.queue(task).getJob(id);
      if (!job) return 1;
      return Math.max(1, Math.min(job.attemptsMade + 1, job.attemptsStarted || Infinity));
    };
    on('active', async ({ jobId }) => base(jobId, 'started', await attemptOf(jobId)));
    on('completed', async ({ jobId }) => base(jobId, 'completed', await attemptOf(jobId)));
    on(DURABLE_EVENT, async ({ jobId, data }) => {
      const parsed = JSON.parse(data) as WorkerEventData;
      if (parsed.final) {
        this.reported.add(jobId);
        // The oldest first (a Set keeps insertion order): their `failed` event is long past, or was lost.
        if (this.reported.size > REPORTED_LIMIT) this.reported.delete(this.reported.values().next().value!);
      }
      const event = base(jobId, parsed.type, parsed.attempt);
      if (parsed.durationMs !== undefined) event.durationMs = parsed.durationMs;
      if (parsed.error !== undefined) event.error = revive(parsed);
      return event;
    });
    // A failure no worker reported: e.g. stalled more often than allowed (its instances kept dying).
    on('failed', async ({ jobId, failedReason }) => {
      if (this.reported.delete(jobId)) return undefined;
      return { ...base(jobId, 'failed', await attemptOf(jobId)), error: new Error(this.reason(failedReason)) };
    });
    on('stalled', async ({ jobId }) => ({
      ...base(jobId, 'restarted', await attemptOf(jobId)),
      error: new Error('its instance stopped renewing the lock (crash, kill, blocked event loop): run again'),
    }));
    on('removed', async ({ jobId, prev }) =>
      WAITING_STATES.has(prev) ? base(jobId, 'terminated', await attemptOf(jobId).catch(() => 1)) : undefined,
    );
    return events;
  }
}

/** @internal A child started from this instance (`unfinishedStarted()`). */
export interface StartedChild {
  id: string;
  task: string;
}

/** @internal A child started from this instance found finished (`unfinishedStarted()`). */
export interface FinishedChild extends StartedChild {
  state: 'completed' | 'failed';
  /** BullMQ's attemptsMade: the failed attempts of a failed child. */
  attempts: number;
}

/** `work`, or the reason of `signal` as soon as it aborts (the batch itself is cancelled by its own listener). */
function untilSignal<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) {
    work.catch(() => undefined);
    return Promise.reject(signal.reason as Error);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      work.catch(() => undefined);
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => (signal.removeEventListener('abort', onAbort), resolve(value)),
      (error: unknown) => (signal.removeEventListener('abort', onAbort), reject(error as Error)),
    );
  });
}

/** The rejection of an `outcome()` still waiting when the application closes. */
function shuttingDown(task: string, id: string): SupervisorShutdownError {
  const error = new SupervisorShutdownError(DURABLE_SUPERVISOR);
  error.message =
    'DurableSupervisor is shutting down (the application is closing): stopped waiting for the outcome of ' +
    `durable task "${task}" (${id})` +
    '. The task itself goes on in Redis; read its outcome on an instance that is running.';
  return error;
}

/** The error of a worker's event, as an Error of the kind the worker saw where it is one of ours. */
function revive(data: WorkerEventData): Error {
  const message = data.error ?? '';
  if (data.type === 'timeout') {
    const error = new TaskTimeoutError(0);
    error.message = message;
    return error;
  }
  if (data.type === 'terminated') {
    const error = new TaskAbortedError('', 'terminated');
    error.message = message;
    return error;
  }
  return new Error(message);
}

/** The options of one start, checked before anything is stored: an unknown or invalid one is refused, named. */
function checkChildOptions(task: string, opts: DurableChildOptions | undefined): void {
  if (opts === undefined) return;
  if (opts === null || typeof opts !== 'object') {
    throw new TypeError(INVALID_CHILD_OPTION(task, 'opts', 'an object with id, delay, priority', opts));
  }
  for (const key of Object.keys(opts)) {
    if (!CHILD_OPTIONS.includes(key)) throw new TypeError(UNKNOWN_CHILD_OPTION(task, key, CHILD_OPTIONS));
  }
  const { id, delay, priority } = opts;
  if (
    id !== undefined &&
    (typeof id !== 'string' || id === '' || id.length > MAX_CHILD_ID_LENGTH || fromJobId(toJobId(id)) !== id)
  ) {
    throw new TypeError(
      INVALID_CHILD_OPTION(task, 'id', `a non-empty string of at most ${MAX_CHILD_ID_LENGTH} characters`, id),
    );
  }
  if (delay !== undefined && !(typeof delay === 'number' && delay >= 0 && delay <= MAX_TIMEOUT_MS)) {
    throw new RangeError(INVALID_CHILD_OPTION(task, 'delay', `a number of ms >= 0 and <= ${MAX_TIMEOUT_MS}`, delay));
  }
  if (priority !== undefined && !(Number.isInteger(priority) && priority >= 1 && priority <= MAX_PRIORITY)) {
    throw new RangeError(INVALID_CHILD_OPTION(task, 'priority', `an integer >= 1 and <= ${MAX_PRIORITY}`, priority));
  }
}
