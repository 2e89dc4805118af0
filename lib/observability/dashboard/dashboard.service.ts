import { Inject, Injectable, type OnModuleDestroy, type OnModuleInit, Optional } from '@nestjs/common';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { Observable, type Subscriber } from 'rxjs';
import { CacheService } from '../../caching/cache.service.js';
import { CONCURRENCY_OPTIONS } from '../../concurrency.constants.js';
import { DurableSupervisor } from '../../durable/durable-supervisor.js';
import { FanOut } from '../../fan-out/fan-out.service.js';
import type { ResolvedConcurrencyOptions } from '../../interfaces/concurrency-module-options.interface.js';
import type { JobInfo } from '../../scheduling/interfaces/job-info.interface.js';
import type { JobRun } from '../../scheduling/interfaces/job-run.interface.js';
import { JobRegistry } from '../../scheduling/job.registry.js';
import { SupervisorRegistry } from '../../supervisor/supervisor.registry.js';
import { maxChildren } from '../supervisor-capacity.js';
import { errorMessage } from '../../utils/describe.js';
import { withTimeout } from '../../utils/with-timeout.js';
import { DURABLE_STALE, NO_ANSWER } from '../observability.messages.js';
import type { JobMessage, SupervisorMessage } from '../interfaces/channel-messages.interface.js';
import { CONCURRENCY_CHANNELS } from '../observability.constants.js';
import type { DashboardSnapshot } from './dashboard-snapshot.interface.js';
import { DurationRings } from './duration-rings.js';

/** Children listed per supervisor; the total is always given. */
const CHILDREN_SHOWN = 100;
/** Fan-out calls listed; the total is always given. */
export const FAN_OUT_SHOWN = 100;
/** Durable children listed; the total is always given. */
export const DURABLE_CHILDREN_SHOWN = 100;
/** Durable batches listed (newest first); the total is always given. */
export const DURABLE_BATCHES_SHOWN = 20;
/** Recent durable failures listed per task name, and in all. */
export const DURABLE_FAILURES_PER_TASK = 20;
export const DURABLE_FAILURES_SHOWN = 50;
/** Longest name (child) and error text sent to the page, in characters; longer ones end with an ellipsis. */
export const NAME_MAX = 200;
export const ERROR_MAX = 500;
/** Characters that reorder the text around them (bidi embeddings, overrides, isolates, marks). */
const BIDI_CONTROLS = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;

/**
 * @internal Text from user code as the page shows it: bidi controls replaced by U+FFFD (`report-\u202Etxt.exe` must
 * not render as `report-exe.txt`), and cut at `max` characters with an ellipsis (a 100,000-character name must not
 * make a 2 MB snapshot).
 */
export function displayText(text: string, max: number): string {
  const clean = text.replace(BIDI_CONTROLS, '\uFFFD');
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
}
/** How often the page gets a snapshot (ms). */
export const SNAPSHOT_EVERY_MS = 1000;

/**
 * How long a snapshot waits for the durable queues (Redis) before it goes out with the last known ones, marked
 * stale: a slow or absent Redis must not hold up (or blank) the rest of the page.
 */
export const DURABLE_WAIT_MS = 250;
/** Recent runs shown per job; how long a snapshot waits for the cluster's history before showing this instance's. */
export const RECENT_RUNS_SHOWN = 5;
export const RECENT_RUNS_WAIT_MS = 250;

type DurablePart = NonNullable<DashboardSnapshot['durable']>;

/**
 * A run started after the last failure and none is running now: that run ended without an error (an error would have
 * moved `lastErrorAt` past its start), so the error is history. A run still going (or timed out and still running)
 * keeps the error current.
 */
const errorIsPast = (job: JobInfo): boolean =>
  job.lastErrorAt !== null &&
  job.lastRunAt !== null &&
  job.running === 0 &&
  job.lastRunAt.getTime() > job.lastErrorAt.getTime();

const time = (date: Date | null | undefined): number | null => (date ? date.getTime() : null);

/**
 * @internal The dashboard's data: a snapshot read from the supervisors' totals, `children()`, `JobRegistry.list()`,
 * the fan-out calls' progress and `CacheService.stats()` on a timer, only while a page is connected. Per task, only
 * its duration is recorded (into a fixed ring per supervisor and job, for the percentiles).
 */
/** A connected page: where its snapshots go, and whether its connection still holds an unsent one. */
/** The connection under one page's stream, as far as the stream needs it. */
export interface StreamConnection {
  /** Something the client has not taken yet is still in the socket's buffer (or the socket is gone). */
  backedUp(): boolean;
  /** Drops the connection: for a client that does not take the end of its stream at shutdown. */
  destroy(): void;
}

interface Client {
  readonly subscriber: Subscriber<{ data: string }>;
  readonly connection: StreamConnection;
}

/** How long a page's connection may take to take the end of its stream at shutdown before it is dropped. */
const END_GRACE_MS = 1000;

@Injectable()
export class DashboardService implements OnModuleInit, OnModuleDestroy {
  /** Recent durations per supervisor and per job, for the percentiles: one number written per attempt or run. */
  readonly #supervisorDurations = new DurationRings();
  readonly #jobDurations = new DurationRings();
  readonly #onSupervisor = (message: unknown): void => {
    const m = message as SupervisorMessage;
    if (m.durationMs !== undefined) this.#supervisorDurations.record(m.supervisor, m.durationMs);
  };
  readonly #onJob = (message: unknown): void => {
    const m = message as JobMessage;
    if ((m.type === 'completed' || m.type === 'failed') && m.durationMs !== undefined) {
      this.#jobDurations.record(m.job, m.durationMs);
    }
  };
  /** Set by the first close hook: new streams are refused, open ones end. */
  #closing = false;
  readonly #clients = new Set<Client>();
  #timer: ReturnType<typeof setInterval> | undefined;
  /** A snapshot being built: at most one, whatever the number of pages. */
  #building = false;
  /** The last serialized snapshot, sent at once to a page that connects between ticks. */
  #last: { data: string; at: number } | undefined;
  /** The last answer of the durable queues, and when it came. */
  #durableLast: { value: DurablePart; at: number } | undefined;
  /** The read of the durable queues in flight: at most one, whatever the number of pages and ticks. */
  #durableRead: Promise<void> | undefined;

  constructor(
    @Inject(CONCURRENCY_OPTIONS) private readonly options: ResolvedConcurrencyOptions,
    private readonly supervisors: SupervisorRegistry,
    private readonly jobs: JobRegistry,
    private readonly fanOut: FanOut,
    private readonly cache: CacheService,
    @Optional() private readonly durable?: DurableSupervisor,
  ) {}

  /**
   * Durations are recorded from boot, not only while a page is open: the percentiles are there when someone looks.
   * The cost is the channels' message per attempt or run and one number written into a fixed-size ring.
   */
  onModuleInit(): void {
    subscribe(CONCURRENCY_CHANNELS.supervisor, this.#onSupervisor);
    subscribe(CONCURRENCY_CHANNELS.job, this.#onJob);
  }

  /** @internal True when durable tasks are not configured (the controller's durable action answers 404). */
  get durableOff(): boolean {
    return this.durable === undefined || this.options.durable === undefined;
  }

  get readOnly(): boolean {
    return this.options.dashboard?.readOnly ?? true;
  }

  /** True from the application's first close hook: the controller answers 503 to a new stream. */
  get closing(): boolean {
    return this.#closing;
  }

  /**
   * The snapshots for one page, serialized: one snapshot a second is built and serialized once for every connected
   * page. `backedUp` says that the page's connection still holds data it has not taken: that page skips the tick
   * (never more than the latest snapshot waits for a client that does not read). Ends when the application closes;
   * a stream that starts once it is closing ends at once.
   */
  stream(
    connection: StreamConnection = { backedUp: () => false, destroy: () => undefined },
  ): Observable<{ data: string }> {
    return new Observable<{ data: string }>((subscriber) => {
      if (this.#closing) {
        subscriber.complete();
        return;
      }
      const client: Client = { subscriber, connection };
      this.#clients.add(client);
      const last = this.#last;
      if (last !== undefined && Date.now() - last.at < SNAPSHOT_EVERY_MS) subscriber.next({ data: last.data });
      if (this.#timer === undefined) {
        this.#timer = setInterval(() => this.tick(), SNAPSHOT_EVERY_MS);
        this.#timer.unref?.();
        if (last === undefined || Date.now() - last.at >= SNAPSHOT_EVERY_MS) this.tick();
      }
      return () => {
        this.#clients.delete(client);
        if (this.#clients.size === 0) this.stopTimer();
      };
    });
  }

  /** One snapshot for every connected page; a tick that comes while the previous one is still built is skipped. */
  private tick(): void {
    if (this.#building || this.#clients.size === 0) return;
    this.#building = true;
    this.snapshot()
      .then((snapshot) => {
        const data = JSON.stringify(snapshot);
        this.#last = { data, at: Date.now() };
        for (const client of this.#clients) {
          if (!client.connection.backedUp()) client.subscriber.next({ data });
        }
      })
      .catch(() => undefined)
      .finally(() => (this.#building = false));
  }

  private stopTimer(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#last = undefined;
  }

  async snapshot(): Promise<DashboardSnapshot> {
    const now = Date.now();
    const supervisors = this.supervisors.all().map((sup) => {
      const { total, children } = sup.childrenPreview(CHILDREN_SHOWN);
      return {
        name: sup.name,
        counts: { ...sup.counts },
        total,
        capacity: maxChildren(sup),
        durations: this.#supervisorDurations.percentiles(sup.name),
        children: children.map((c) => ({
          id: c.id,
          name: c.name === undefined || c.name === null ? null : displayText(String(c.name), NAME_MAX),
          status: c.status,
          ageMs: c.startedAt ? now - c.startedAt.getTime() : null,
          attempt: c.restarts + 1,
        })),
      };
    });
    const infos = this.jobs.list();
    const recent = await this.#recentRuns(infos.map((job) => job.name));
    const jobs = infos.map((job, i) => ({
      name: job.name,
      kind: job.kind,
      schedule: job.schedule,
      running: job.running,
      runs: job.runs,
      failures: job.failures,
      skipped: job.skipped,
      paused: job.paused,
      lastRunAt: time(job.lastRunAt),
      lastDurationMs: job.lastDurationMs,
      nextRunAt: time(job.nextRunAt),
      lastError:
        job.lastError === null || job.lastError === undefined
          ? null
          : displayText(errorMessage(job.lastError), ERROR_MAX),
      lastErrorAt: time(job.lastErrorAt),
      lastErrorPast: errorIsPast(job),
      durations: this.#jobDurations.percentiles(job.name),
      recent: recent[i].map((run) => {
        const out: DashboardSnapshot['jobs'][number]['recent'][number] = {
          outcome: run.outcome,
          startedAt: run.startedAt.getTime(),
          durationMs: run.durationMs,
          instance: displayText(run.instance, NAME_MAX),
        };
        if (run.error !== undefined) out.error = displayText(run.error, ERROR_MAX);
        return out;
      }),
    }));
    const calls = this.fanOut.runningCallsProgress();
    const fanOut = calls.slice(0, FAN_OUT_SHOWN).map((call) => ({
      id: call.id,
      settled: call.settled,
      total: call.total ?? null,
      failed: call.failed,
      timedOut: call.timedOut,
      ageMs: call.startedAt === 0 ? 0 : now - call.startedAt,
    }));
    const stats = this.cache.stats();
    const cache = {
      hits: stats.hits,
      misses: stats.misses,
      stale: stats.stale,
      coalesced: stats.coalesced,
      errors: stats.errors,
      entries: (this.cache.memory as { size?: number }).size ?? 0,
      methods: stats.methods,
    };
    return {
      at: now,
      readOnly: this.readOnly,
      supervisors,
      jobs,
      fanOut,
      fanOutTotal: calls.length,
      cache,
      durable: await this.durableQueues(),
    };
  }

  /**
   * The last runs of each job: the cluster's (the lock store's history) within `RECENT_RUNS_WAIT_MS`, else this
   * instance's, so a slow or down store never blanks the jobs.
   */
  async #recentRuns(names: string[]): Promise<JobRun[][]> {
    const local = () => names.map((name) => this.jobs.localHistory(name, RECENT_RUNS_SHOWN));
    if (names.length === 0) return [];
    try {
      return await withTimeout(
        Promise.all(names.map((name) => this.jobs.history(name, { limit: RECENT_RUNS_SHOWN }))),
        RECENT_RUNS_WAIT_MS,
        () => new Error('history'),
      );
    } catch {
      return local();
    }
  }

  /**
   * The durable queues as Redis tells them within `DURABLE_WAIT_MS`; else the last known ones with `stale: true`
   * (and `asOf`), the read going on in the background for the next snapshot.
   */
  private async durableQueues(): Promise<DashboardSnapshot['durable']> {
    if (this.durable === undefined || this.options.durable === undefined) return null;
    this.#durableRead ??= this.readDurable().finally(() => (this.#durableRead = undefined));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const arrived = await Promise.race([
      this.#durableRead.then(() => true),
      new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), DURABLE_WAIT_MS))),
    ]);
    clearTimeout(timer);
    const last = this.#durableLast;
    if (arrived && last) return last.value;
    return {
      queues: last?.value.queues ?? [],
      children: last?.value.children ?? [],
      childrenTotal: last?.value.childrenTotal ?? 0,
      batches: last?.value.batches ?? [],
      batchesTotal: last?.value.batchesTotal ?? 0,
      failures: last?.value.failures ?? [],
      stale: true,
      ...(last ? { asOf: last.at } : {}),
      error: last?.value.error ?? DURABLE_STALE(Date.now() - (last?.at ?? Date.now()), DURABLE_WAIT_MS),
    };
  }

  /** One read of the durable queues into `#durableLast` (never rejects). */
  private async readDurable(): Promise<void> {
    this.#durableLast = { value: await this.fetchDurable(), at: Date.now() };
  }

  private async fetchDurable(): Promise<DurablePart> {
    const durable = this.durable!;
    const options = this.options.durable!;
    try {
      const ms = options.storeTimeout * 2;
      const [queues, children, failures, batches] = await withTimeout(
        Promise.all([
          durable.queueCounts(),
          durable.children(),
          durable.recentFailures(DURABLE_FAILURES_PER_TASK, DURABLE_FAILURES_SHOWN),
          durable.batchesPreview(DURABLE_BATCHES_SHOWN),
        ]),
        ms,
        () => new Error(NO_ANSWER(ms)),
      );
      // Task names with nothing waiting, running or failed are left out.
      return {
        queues: queues.filter((q) => q.waiting + q.running + q.failed > 0),
        children: children.slice(0, DURABLE_CHILDREN_SHOWN).map((c) => ({
          id: displayText(c.id, NAME_MAX),
          task: displayText(c.task, NAME_MAX),
          status: c.status,
          attempt: c.attempt,
          // Ids are at most 512 characters (startChild refuses longer ones): the exact pair stays small.
          target: { task: c.task, id: c.id },
        })),
        childrenTotal: children.length,
        batches: batches.batches.map((b) => ({
          ...b,
          id: displayText(b.id, NAME_MAX),
          task: displayText(b.task, NAME_MAX),
        })),
        batchesTotal: batches.total,
        failures: failures.map((f) => ({
          id: displayText(f.id, NAME_MAX),
          task: displayText(f.task, NAME_MAX),
          attempt: f.attempt,
          failedAt: f.failedAt,
          error: displayText(f.error, ERROR_MAX),
        })),
      };
    } catch (error) {
      return {
        queues: [],
        children: [],
        childrenTotal: 0,
        batches: [],
        batchesTotal: 0,
        failures: [],
        error: displayText(errorMessage(error), ERROR_MAX),
      };
    }
  }

  /**
   * Ends every open event stream and refuses new ones: an SSE connection must not hold `app.close()` up, and a page
   * that reconnects during the shutdown (an EventSource does, by itself) must not open one that never ends. A client
   * that does not take the end of its stream (it stopped reading: a frozen tab, a proxy that paused) keeps its
   * response unfinished, and the HTTP server's close waits for every unfinished response: such a connection is
   * dropped after a short grace.
   */
  onModuleDestroy(): void {
    unsubscribe(CONCURRENCY_CHANNELS.supervisor, this.#onSupervisor);
    unsubscribe(CONCURRENCY_CHANNELS.job, this.#onJob);
    this.#closing = true;
    this.stopTimer();
    const connections: StreamConnection[] = [];
    // Completing runs the teardown, which deletes the client: deleting during a Set iteration is safe.
    for (const client of this.#clients) {
      connections.push(client.connection);
      client.subscriber.complete();
    }
    this.#clients.clear();
    if (connections.length === 0) return;
    setTimeout(() => {
      for (const connection of connections) if (connection.backedUp()) connection.destroy();
    }, END_GRACE_MS).unref();
  }
}
