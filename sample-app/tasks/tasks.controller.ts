import { Controller, Delete, Get, NotFoundException, Param } from '@nestjs/common';
import {
  type ChildInfo,
  type DurableChildInfo,
  DurableSupervisor,
  InjectSupervisor,
  type TaskSupervisor,
} from 'nestjs-concurrency';
import { SampleConfig } from '../config/sample-config.js';

/** One row of `GET /tasks`: a child of an in-memory supervisor, or (with `REDIS_URL`) a durable one of any instance. */
export type TaskRow = Omit<ChildInfo, 'status'> & {
  supervisor: string;
  status: ChildInfo['status'] | DurableChildInfo['status'];
  attempt?: number;
};

/** The live children of every supervisor of the app, durable ones included, and a way to stop one. */
@Controller('tasks')
export class TasksController {
  private readonly supervisors: TaskSupervisor[];

  constructor(
    @InjectSupervisor() defaults: TaskSupervisor,
    @InjectSupervisor('emails') emails: TaskSupervisor,
    @InjectSupervisor('jobs') jobs: TaskSupervisor,
    private readonly durable: DurableSupervisor,
    private readonly config: SampleConfig,
  ) {
    this.supervisors = [defaults, emails, jobs];
  }

  @Get()
  async list(): Promise<TaskRow[]> {
    const local = this.supervisors.flatMap((s) => s.children().map((child) => ({ supervisor: s.name, ...child })));
    if (!this.config.redisUrl) return local;
    const durable = (await this.durable.children()).map((child): TaskRow => ({
      supervisor: 'durable',
      id: child.id,
      name: child.task,
      status: child.status,
      startedAt: child.startedAt,
      restarts: child.attempt - 1,
      attempt: child.attempt,
    }));
    return [...local, ...durable];
  }

  /** Aborts the task's signal (on whichever instance runs it) and answers once it has stopped. */
  @Delete(':id')
  async terminate(@Param('id') id: string): Promise<{ id: string; supervisor: string; terminated: true }> {
    for (const supervisor of this.supervisors) {
      if (await supervisor.terminateChild(id)) return { id, supervisor: supervisor.name, terminated: true };
    }
    if (this.config.redisUrl && (await this.durable.terminateChild(id))) {
      return { id, supervisor: 'durable', terminated: true };
    }
    throw new NotFoundException(`No running task with id "${id}".`);
  }
}
