import {
  type BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import type { Job, Worker } from 'bullmq';
import { CONCURRENCY_OPTIONS } from '../concurrency.constants.js';
import { TaskAbortedError } from '../errors/task-aborted.error.js';
import { TaskTimeoutError } from '../errors/task-timeout.error.js';
import type { ResolvedConcurrencyOptions } from '../interfaces/concurrency-module-options.interface.js';
import type { SupervisorEvent } from '../supervisor/interfaces/child.interface.js';
import { isThenable } from '../supervisor/utils/is-thenable.util.js';
import { errorMessage, errorStack, safeString } from '../utils/describe.js';
import { withTimeout } from '../utils/with-timeout.js';
import { durableChannel } from '../observability/channels.js';
import { ConcurrencyTracing } from '../observability/tracing/concurrency-tracing.js';
import { traceProcess } from '../observability/tracing/durable-tracing.js';
import { DurableContext } from './durable-context.js';
import { DurableHandlers, type TaskHandlerDefinition } from './durable-handlers.js';
import {
  DURABLE_BULLMQ,
  DURABLE_EVENT,
  DURABLE_SUPERVISOR,
  TASKS_KEY,
  TERMINATE_CHANNEL,
} from './durable.constants.js';
import {
  type BullMQModule,
  connectionOptions,
  cut,
  keepErrorListener,
  type RawRedis,
  rawClient,
} from './durable.loader.js';
import {
  HANDLER_FAILED,
  RESULT_NOT_JSON,
  RESULT_TOO_LARGE,
  SHUTDOWN_HANDBACK,
  STALLED_TOO_OFTEN,
} from './durable.messages.js';
import { fromJobId } from './utils/job-id.util.js';
import { toJson } from './utils/json-check.util.js';
import { LogThrottle } from './utils/log-throttle.util.js';
import { untilAborted } from './utils/until-aborted.util.js';
import { BATCH_ITEM, fulfilledJson, parseItem, rejectedJson } from './batch/batch-item.util.js';
import { type BatchRedis, FINISH, RELEASE, runScript, START } from './batch/batch.scripts.js';

/** How long a batch item waits for a free slot of its batch's `concurrency` before it asks again (ms, plus jitter). */
const BATCH_SLOT_WAIT = 100;
/** The kind of a final failure ('failed', 'timeout', 'terminated'), on the error handed to BullMQ. */
const finalKinds = new WeakMap<Error, string>();

/** The abort reason of an attempt cut short by shutdown: handed back to the queue, not failed. */
class HandBack extends TaskAbortedError {}

type RedisClient = RawRedis;

interface Running {
  def: TaskHandlerDefinition;
  worker: Worker;
  /** The worker's connection once ready: failure events go on it, in order with BullMQ's own writes. */
  client: RedisClient | undefined;
}

/**
 * @internal Runs the `@TaskHandler`s: one BullMQ Worker per task name (concurrency per name), created at bootstrap
 * when `durable.workers` is not false; drained at shutdown (up to `shutdownTimeout`, then aborted and handed back to
 * the queue). Listens for terminate requests from any instance.
 */
@Injectable()
export class DurableWorkers implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('DurableSupervisor');
  private readonly throttle = new LogThrottle();
  private readonly running = new Map<string, Running>();
  /** Terminate requests that arrived before their job was tracked by the worker: id -> until when. */
  private readonly early = new Map<string, number>();
  private subscriber: RedisClient | undefined;
  /** Attempts running on this instance, and who waits for that to be none. */
  private active = 0;
  private readonly idle = new Set<() => void>();

  /** A CONSUMER span per attempt when the application traces. */
  @Inject(ConcurrencyTracing) private readonly tracing: ConcurrencyTracing | undefined;

  constructor(
    @Inject(CONCURRENCY_OPTIONS) private readonly options: ResolvedConcurrencyOptions,
    @Inject(DURABLE_BULLMQ) private readonly bullmq: BullMQModule | undefined,
    private readonly handlers: DurableHandlers,
  ) {}

  onApplicationBootstrap(): void {
    const durable = this.options.durable;
    if (!durable?.workers || !this.bullmq || this.handlers.byName.size === 0) return;
    // BullMQ takes a dead instance's job back at a stalled check that finds it in the stalled set (put there by an
    // earlier check, after the job's last lock renewal) with its lock expired. The check runs at most once per
    // stalledInterval cluster-wide, so after the checking instance dies the next one can come up to 2 intervals late:
    // worst case max(2 x interval + interval, lock + interval). With lock = T/2 (renewed every T/4) and interval =
    // T/4 that is 3/4 T, inside stalledTimeout T (lock = interval = T/2 gave up to 1.5 T).
    const lockDuration = Math.max(500, Math.floor(durable.stalledTimeout / 2));
    const stalledInterval = Math.max(250, Math.floor(durable.stalledTimeout / 4));
    for (const def of this.handlers.byName.values()) {
      const entry: Running = { def, worker: undefined as unknown as Worker, client: undefined };
      entry.worker = new this.bullmq.Worker(
        def.name,
        // Three parameters: BullMQ then gives the processor an AbortSignal (Worker.cancelJob aborts it).
        (job: Job, token?: string, signal?: AbortSignal) =>
          traceProcess(this.tracing?.tracer, def.name, job, job.id === undefined ? undefined : fromJobId(job.id), () =>
            job.name === BATCH_ITEM
              ? this.runItem(entry, job, token as string, signal!)
              : this.run(entry, job, token as string, signal!),
          ),
        {
          connection: connectionOptions(durable.connection, { maxRetriesPerRequest: null }),
          prefix: durable.prefix,
          concurrency: def.concurrency,
          lockDuration,
          stalledInterval,
          maxStalledCount: durable.maxStalls,
          settings: { backoffStrategy: (attemptsMade: number) => def.backoff * 2 ** Math.max(0, attemptsMade - 1) },
        },
      );
      entry.worker.on('error', (error) => this.logError(`worker ${def.name}`, error));
      // A batch item BullMQ failed without running it (stalled more often than maxStalls): its batch learns it here.
      entry.worker.on('failed', (job) => {
        if (job?.name === BATCH_ITEM && job.deferredFailure) void this.stalledItem(entry, job);
      });
      keepErrorListener(entry.worker);
      rawClient(entry.worker).then(
        (client) => (entry.client = client),
        () => undefined,
      );
      this.running.set(def.name, entry);
    }
    void this.listen(durable.prefix);
  }

  /**
   * Drains: no new attempts; running ones get `shutdownTimeout`, then are aborted and handed back to the queue. With
   * nothing running, or with Redis away (nothing can be handed back then: another instance takes the attempts back
   * after their locks expire), it does not wait more than `storeTimeout` for Redis.
   */
  async beforeApplicationShutdown(): Promise<void> {
    if (this.running.size === 0) return;
    const entries = [...this.running.values()];
    const closing = Promise.allSettled(entries.map(({ worker }) => worker.close()));
    const { storeTimeout } = this.options.durable!;
    const drained = await within(Promise.race([closing, this.untilIdle()]), this.options.shutdownTimeout);
    let closed: boolean;
    if (drained && this.active === 0) {
      // Nothing runs: what is left is Redis's answer to the close.
      closed = await within(closing, storeTimeout);
    } else {
      for (const { worker, def } of entries) worker.cancelAllJobs(new HandBack(def.name, 'shutdown') as never);
      // Handing back is one Redis call per attempt: only worth a wait while Redis is there.
      const reachable = entries.some(({ client }) => client?.status === 'ready');
      closed = reachable && (await within(closing, storeTimeout + 1000));
    }
    if (!closed) {
      // Redis away: BullMQ's close waits for a QUIT that cannot be answered. Cut the connections, wait no more.
      await Promise.allSettled(entries.map(({ worker }) => cut(worker)));
    }
    this.running.clear();
    const subscriber = this.subscriber;
    this.subscriber = undefined;
    subscriber?.disconnect();
  }

  /** Resolves once no attempt runs on this instance. */
  private untilIdle(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.add(resolve));
  }

  private async listen(prefix: string): Promise<void> {
    try {
      const first = this.running.values().next().value as Running;
      const client = await rawClient(first.worker);
      await client.sadd(`${prefix}:${TASKS_KEY}`, ...this.running.keys());
      if (this.running.size === 0) return; // shut down meanwhile
      const subscriber = client.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null }) as RedisClient;
      this.subscriber = subscriber;
      subscriber.on('error', (error: unknown) => this.logError('terminate listener', error));
      subscriber.on('message', (_channel: string, message: string) => this.onTerminate(message));
      await subscriber.subscribe(`${prefix}:${TERMINATE_CHANNEL}`);
    } catch (error) {
      this.logError('terminate listener', error);
    }
  }

  private onTerminate(message: string): void {
    let request: { task?: unknown; id?: unknown };
    try {
      request = JSON.parse(message) as typeof request;
    } catch {
      return;
    }
    const entry = typeof request.task === 'string' ? this.running.get(request.task) : undefined;
    if (!entry || typeof request.id !== 'string') return;
    if (!entry.worker.cancelJob(request.id, new TaskAbortedError(entry.def.name, 'terminated') as never)) {
      const now = Date.now();
      for (const [id, until] of this.early) if (until < now) this.early.delete(id);
      this.early.set(request.id, now + 5000);
    }
  }

  /**
   * One attempt of a batch item: it runs only if its batch is still going and its index is inside the batch's window
   * (`concurrency`, across the cluster); its outcome goes to the batch's record in Redis when it ends for good. In a
   * Lua script each, so the window and the counts hold whichever instance dies.
   */
  private async runItem(entry: Running, job: Job, token: string, signal: AbortSignal): Promise<unknown> {
    const { prefix, retention } = this.options.durable!;
    const jobId = job.id as string;
    const { index, keys } = parseItem(prefix, fromJobId(jobId));
    const client = (entry.client ?? (await rawClient(entry.worker))) as unknown as BatchRedis;
    const [verdict, timeout] = (await runScript(client, START, keys.slice(0, 3), [index, jobId])) as string[];
    if (verdict === 'wait') {
      await job.moveToDelayed(Date.now() + BATCH_SLOT_WAIT + Math.floor(Math.random() * BATCH_SLOT_WAIT), token);
      throw new this.bullmq!.DelayedError();
    }
    if (verdict !== 'run') return undefined; // cancelled, failed fast, already done, or no batch: never run
    let value: unknown;
    try {
      value = await this.run(entry, job, token, signal, timeout ? Number(timeout) : undefined);
    } catch (error) {
      const kind = error instanceof Error ? finalKinds.get(error) : undefined;
      if (kind === undefined) {
        // Runs again (restart, or handed back at shutdown): not running meanwhile (it keeps its place in the window).
        await runScript(client, RELEASE, [keys[1]!], [jobId]).catch((e: unknown) => this.logError('batch', e));
      } else {
        const message = (error as Error).message;
        await this.finishItem(entry, client, keys, [
          index,
          jobId,
          rejectedJson(message, kind),
          1,
          retention.completed.age,
        ]);
      }
      throw error;
    }
    const json = value === undefined ? undefined : JSON.stringify(value);
    await this.finishItem(entry, client, keys, [index, jobId, fulfilledJson(json), 0, retention.completed.age]);
    return value;
  }

  private async stalledItem(entry: Running, job: Job): Promise<void> {
    const durable = this.options.durable!;
    const jobId = job.id as string;
    const { index, keys } = parseItem(durable.prefix, fromJobId(jobId));
    const message = STALLED_TOO_OFTEN(durable.maxStalls, durable.stalledTimeout);
    try {
      const client = (entry.client ?? (await rawClient(entry.worker))) as unknown as BatchRedis;
      const outcome = rejectedJson(message, 'failed');
      await this.finishItem(entry, client, keys, [index, jobId, outcome, 1, durable.retention.completed.age]);
    } catch (error) {
      this.logError('batch', error);
    }
  }

  /** Records an item's outcome; a fail-fast failure aborts the siblings that run now, wherever they run. */
  private async finishItem(
    entry: Running,
    client: BatchRedis,
    keys: string[],
    args: Array<string | number>,
  ): Promise<void> {
    const reply = (await runScript(client, FINISH, keys, args)) as string[];
    if (reply[0] !== 'abort') return;
    const channel = `${this.options.durable!.prefix}:${TERMINATE_CHANNEL}`;
    for (const id of reply.slice(1)) {
      client
        .publish(channel, JSON.stringify({ task: entry.def.name, id }))
        .catch((e: unknown) => this.logError('batch', e));
    }
  }

  /** One attempt: the handler with its context, bounded by its timeout and by terminate/shutdown aborts. */
  private async run(
    entry: Running,
    job: Job,
    token: string,
    signal: AbortSignal,
    timeoutMs: number | undefined = entry.def.timeout,
  ): Promise<unknown> {
    const { def, worker } = entry;
    const ctx = new DurableContext(job, signal, this.options.durable!.storeTimeout);
    const jobId = job.id as string;
    if (this.early.size > 0 && this.early.delete(jobId)) {
      worker.cancelJob(jobId, new TaskAbortedError(def.name, 'terminated') as never);
    }
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => worker.cancelJob(jobId, new TaskTimeoutError(timeoutMs, def.name) as never), timeoutMs);
    const startedAt = Date.now();
    if (durableChannel.hasSubscribers) durableChannel.publish(localEvent(def.name, ctx.id, 'started', ctx.attempt));
    this.active++;
    try {
      if (signal.aborted) throw signal.reason;
      let value = (def.instance as Record<string, (p: unknown, c: DurableContext) => unknown>)[def.methodName](
        job.data,
        ctx,
      );
      if (isThenable(value)) value = await untilAborted(value, signal);
      if (value !== undefined) {
        // Checked as JSON.stringify really writes it, once: BullMQ then stores the parsed copy, to the same text.
        const checked = toJson(value, 'result');
        if (!('json' in checked)) {
          throw new this.bullmq!.UnrecoverableError(RESULT_NOT_JSON(def.name, checked.path, checked.what));
        }
        const size = Buffer.byteLength(checked.json);
        const limit = this.options.durable!.maxPayloadSize;
        if (size > limit) throw new this.bullmq!.UnrecoverableError(RESULT_TOO_LARGE(def.name, size, limit));
        value = JSON.parse(checked.json);
      }
      if (durableChannel.hasSubscribers) {
        const event = localEvent(def.name, ctx.id, 'completed', ctx.attempt);
        event.durationMs = Date.now() - startedAt;
        durableChannel.publish(event);
      }
      return value;
    } catch (thrown) {
      throw await this.failed(entry, job, token, signal, thrown, ctx.attempt, startedAt);
    } finally {
      clearTimeout(timer);
      if (--this.active === 0) {
        for (const resolve of this.idle) resolve();
        this.idle.clear();
      }
    }
  }

  /** What BullMQ gets for a failed attempt; logs it with its task name and reports it on the event stream. */
  private async failed(
    entry: Running,
    job: Job,
    token: string,
    signal: AbortSignal,
    thrown: unknown,
    attempt: number,
    startedAt: number,
  ): Promise<Error> {
    const { def } = entry;
    const bullmq = this.bullmq!;
    const id = job.id as string;
    const shown = fromJobId(id);
    const reason: unknown = signal.aborted ? signal.reason : undefined;
    if (isA(reason, HandBack)) {
      this.logger.warn(SHUTDOWN_HANDBACK(def.name, shown, this.options.shutdownTimeout));
      try {
        await withTimeout(job.moveToWait(token), this.options.durable!.storeTimeout, () => new Error('timeout'));
        return new bullmq.WaitingError();
      } catch (error) {
        // Left active: the stalled check of another instance takes it back after its lock expires.
        this.logError(`hand-back of ${def.name}`, error);
        return new bullmq.WaitingError();
      }
    }
    const durationMs = Date.now() - startedAt;
    if (isA(reason, TaskAbortedError)) {
      this.logger.warn(`Durable task "${def.name}" (${shown}) was terminated at attempt ${attempt}.`);
      this.report(entry, id, [{ type: 'terminated', attempt, durationMs, error: reason.message, final: true }], reason);
      const terminated = new bullmq.UnrecoverableError(reason.message);
      finalKinds.set(terminated, 'terminated');
      return terminated;
    }
    const timedOut = isA(reason, TaskTimeoutError);
    const error = timedOut ? reason : thrown;
    const message = errorMessage(error);
    const final =
      isA(thrown, bullmq.UnrecoverableError) ||
      def.restart === 'temporary' ||
      attempt >= 1 + def.maxRestarts ||
      attempt >= (job.opts.attempts ?? 1);
    const traceId = this.tracing?.tracer?.traceId(); // inside the attempt's CONSUMER span when the app traces
    const suffix = traceId === undefined ? '' : ` traceId=${traceId}`;
    this.logger.error(HANDLER_FAILED(def.name, shown, attempt, message, final) + suffix, errorStack(error));
    const events: WorkerEvent[] = [
      { type: timedOut ? 'timeout' : 'failed', attempt, durationMs, error: message, ...(final ? { final } : {}) },
    ];
    if (!final) events.push({ type: 'restarted', attempt: attempt + 1 });
    else if (attempt > 1) events.push({ type: 'max-restarts', attempt, error: message });
    this.report(entry, id, events, error);
    const out = final ? new bullmq.UnrecoverableError(message) : new Error(message);
    if (final) finalKinds.set(out, timedOut ? 'timeout' : 'failed');
    const stack = errorStack(error);
    if (stack) out.stack = stack;
    return out;
  }

  /** Adds the events to the queue's event stream (what `DurableSupervisor.events` reads on every instance). */
  private report(entry: Running, id: string, events: WorkerEvent[], cause: unknown): void {
    if (durableChannel.hasSubscribers) {
      for (const { type, attempt, durationMs, error } of events) {
        const event = localEvent(entry.def.name, fromJobId(id), type, attempt);
        if (durationMs !== undefined) event.durationMs = durationMs;
        if (error !== undefined) event.error = cause;
        durableChannel.publish(event);
      }
    }
    const client = entry.client;
    if (!client) return;
    const key = entry.worker.keys.events;
    for (const event of events) {
      client
        .xadd(key, 'MAXLEN', '~', 10_000, '*', 'event', DURABLE_EVENT, 'jobId', id, 'data', JSON.stringify(event))
        .catch(() => undefined);
    }
  }

  private logError(what: string, error: unknown): void {
    if (this.throttle.allow(what)) {
      this.logger.error(`Durable tasks: Redis error on ${what}: ${safeString(errorMessage(error))}`);
    }
  }
}

interface WorkerEvent {
  type: SupervisorEvent['type'];
  attempt: number;
  durationMs?: number;
  error?: string;
  /** The task's last attempt failed: BullMQ's own `failed` event follows, which observers then skip. */
  final?: true;
}

/** A message on `nestjs-concurrency:durable`: an attempt run on this instance, as a `SupervisorEvent`. */
function localEvent(task: string, childId: string, type: SupervisorEvent['type'], attempt: number): SupervisorEvent {
  return { type, supervisor: DURABLE_SUPERVISOR, childId, name: task, attempt };
}

/** true if `work` settled within `ms`. */
async function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  if (ms === Infinity) {
    await work;
    return true;
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([work.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** `value instanceof type`, false where asking throws (a thrown Proxy whose getPrototypeOf trap throws). */
function isA<T>(value: unknown, type: abstract new (...args: never[]) => T): value is T {
  try {
    return value instanceof type;
  } catch {
    return false;
  }
}
