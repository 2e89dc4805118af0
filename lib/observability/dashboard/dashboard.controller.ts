import {
  type CanActivate,
  ConflictException,
  Controller,
  ForbiddenException,
  Get,
  Header,
  Headers,
  HttpCode,
  Inject,
  NotFoundException,
  Param,
  Post,
  Req,
  Res,
  ServiceUnavailableException,
  Sse,
  type Type,
  UseGuards,
  Optional,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { Observable } from 'rxjs';
import { JobRegistry } from '../../scheduling/job.registry.js';
import { SupervisorShutdownError } from '../../errors/supervisor-shutdown.error.js';
import { JobRunningError } from '../../scheduling/errors/job-running.error.js';
import { UnknownJobError } from '../../scheduling/errors/unknown-job.error.js';
import { SupervisorRegistry } from '../../supervisor/supervisor.registry.js';
import { describeValue } from '../../utils/describe.js';
import {
  ACTION_HEADER_MISSING,
  DASHBOARD_CLOSING,
  NO_SUCH_CHILD,
  NO_SUCH_DURABLE_CHILD,
  READ_ONLY,
} from '../observability.messages.js';
import { DurableSupervisor } from '../../durable/durable-supervisor.js';
import type { Socket } from 'node:net';
import type { DashboardSnapshot } from './dashboard-snapshot.interface.js';
import { DashboardService } from './dashboard.service.js';
import { dashboardPage, pageCsp } from './dashboard.page.js';

/** The header every action needs: a cross-site form cannot send a custom header, and fetch() needs CORS for it. */
export const ACTION_HEADER = 'x-concurrency-dashboard';

/**
 * @internal The dashboard's routes under `path`, behind `guard`: the page, a JSON snapshot, the SSE stream, and the
 * actions (POST, with `ACTION_HEADER`, refused when read-only). Built per application: the path and guard come from
 * the options.
 */
export function createDashboardController(path: string, guard: Type<CanActivate> | false): Type {
  @Controller(path)
  @UseGuards(...(guard === false ? [] : [guard]))
  class ConcurrencyDashboardController {
    constructor(
      @Inject(DashboardService) private readonly dashboard: DashboardService,
      @Inject(SupervisorRegistry) private readonly supervisors: SupervisorRegistry,
      @Inject(JobRegistry) private readonly jobs: JobRegistry,
      @Inject(HttpAdapterHost) private readonly adapterHost: HttpAdapterHost,
      @Optional() @Inject(DurableSupervisor) private readonly durable?: DurableSupervisor,
    ) {}

    @Get()
    @Header('Content-Type', 'text/html; charset=utf-8')
    @Header('Cache-Control', 'no-store')
    @Header('X-Content-Type-Options', 'nosniff')
    page(@Res({ passthrough: true }) response: unknown): string {
      // Set here rather than with @Header(): the policy holds the hashes of the page, read on first use.
      this.adapterHost.httpAdapter.setHeader(response, 'Content-Security-Policy', pageCsp());
      return dashboardPage(this.dashboard.readOnly);
    }

    @Get('snapshot')
    @Header('Cache-Control', 'no-store')
    snapshot(): Promise<DashboardSnapshot> {
      return this.dashboard.snapshot();
    }

    /**
     * Refused with 503 once the application is closing: an EventSource does not retry after an answer that is not
     * an event stream, so an open tab stops reconnecting to a server that shuts down.
     */
    @Sse('events')
    events(@Req() request: unknown): Observable<{ data: string }> {
      if (this.dashboard.closing) throw new ServiceUnavailableException(DASHBOARD_CLOSING);
      const socket = requestSocket(request);
      // Something the client has not taken yet is still in the socket's buffer: skip a tick rather than queue it.
      return this.dashboard.stream({
        backedUp: () => socket !== undefined && (socket.destroyed || socket.writableLength > 0),
        destroy: () => socket?.destroy(),
      });
    }

    @Post('supervisors/:supervisor/children/:id/terminate')
    @HttpCode(200)
    async terminate(
      @Param('supervisor') name: string,
      @Param('id') id: string,
      @Headers(ACTION_HEADER) header: string | undefined,
    ): Promise<{ terminated: boolean }> {
      this.allow(header);
      const supervisor = this.supervisors.all().find((s) => s.name === name);
      if (!supervisor) throw new NotFoundException(`No supervisor ${describeValue(name)}.`);
      if (!(await supervisor.terminateChild(id))) throw new NotFoundException(NO_SUCH_CHILD(name, id));
      return { terminated: true };
    }

    /** A durable child, by task name and id: waiting or delayed, removed; running, its signal aborted where it runs. */
    @Post('durable/:task/children/:id/terminate')
    @HttpCode(200)
    async terminateDurable(
      @Param('task') task: string,
      @Param('id') id: string,
      @Headers(ACTION_HEADER) header: string | undefined,
    ): Promise<{ terminated: boolean }> {
      this.allow(header);
      if (this.durable === undefined || this.dashboard.durableOff)
        throw new NotFoundException('Durable tasks are not configured.');
      let terminated: boolean;
      try {
        terminated = await this.durable.terminateChild(id, task);
      } catch (error) {
        if (error instanceof TypeError) throw new NotFoundException(NO_SUCH_DURABLE_CHILD(task, id));
        throw error;
      }
      if (!terminated) throw new NotFoundException(NO_SUCH_DURABLE_CHILD(task, id));
      return { terminated: true };
    }

    @Post('jobs/:name/run')
    @HttpCode(202)
    async run(
      @Param('name') name: string,
      @Headers(ACTION_HEADER) header: string | undefined,
    ): Promise<{ started: true }> {
      this.allow(header);
      let run: Promise<void> | undefined;
      this.job(name, () => (run = this.jobs.trigger(name)));
      // A run the overlap guard skips (or a closing application refuses) is refused at once: say so (409 / 503)
      // rather than 202. A started run's outcome shows in the job's row, not in this answer.
      const refusal = await Promise.race([
        run!.then(
          () => undefined,
          (error: unknown) => error,
        ),
        new Promise<undefined>((resolve) => setImmediate(() => resolve(undefined))),
      ]);
      if (refusal instanceof JobRunningError) throw new ConflictException(refusal.message);
      if (refusal instanceof SupervisorShutdownError) throw new ServiceUnavailableException(refusal.message);
      run!.catch(() => undefined);
      return { started: true };
    }

    @Post('jobs/:name/pause')
    @HttpCode(200)
    pause(@Param('name') name: string, @Headers(ACTION_HEADER) header: string | undefined): { paused: true } {
      this.allow(header);
      this.job(name, () => this.jobs.pause(name));
      return { paused: true };
    }

    @Post('jobs/:name/resume')
    @HttpCode(200)
    resume(@Param('name') name: string, @Headers(ACTION_HEADER) header: string | undefined): { paused: false } {
      this.allow(header);
      this.job(name, () => this.jobs.resume(name));
      return { paused: false };
    }

    private allow(header: string | undefined): void {
      if (this.dashboard.readOnly) throw new ForbiddenException(READ_ONLY);
      if (header === undefined || header === '') throw new ForbiddenException(ACTION_HEADER_MISSING(ACTION_HEADER));
    }

    private job(name: string, action: () => void): void {
      try {
        this.jobs.get(name);
      } catch (error) {
        if (error instanceof UnknownJobError) throw new NotFoundException(`No job ${describeValue(name)}.`);
        throw error;
      }
      action();
    }
  }
  return ConcurrencyDashboardController;
}

/** The connection of a request: Express's `req.socket`, Fastify's `request.raw.socket`. */
function requestSocket(request: unknown): Socket | undefined {
  const r = request as { socket?: Socket; raw?: { socket?: Socket } } | undefined;
  return r?.socket ?? r?.raw?.socket;
}
