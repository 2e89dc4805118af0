import { Controller, Delete, Get, NotFoundException, Param } from '@nestjs/common';
import { type ChildInfo, InjectSupervisor, type TaskSupervisor } from 'nestjs-concurrency';

/** The live children of every supervisor of the app, and a way to stop one. */
@Controller('tasks')
export class TasksController {
  private readonly supervisors: TaskSupervisor[];

  constructor(
    @InjectSupervisor() defaults: TaskSupervisor,
    @InjectSupervisor('emails') emails: TaskSupervisor,
    @InjectSupervisor('jobs') jobs: TaskSupervisor,
  ) {
    this.supervisors = [defaults, emails, jobs];
  }

  @Get()
  list(): Array<ChildInfo & { supervisor: string }> {
    return this.supervisors.flatMap((s) => s.children().map((child) => ({ supervisor: s.name, ...child })));
  }

  /** Aborts the task's signal and answers once it has stopped. */
  @Delete(':id')
  async terminate(@Param('id') id: string): Promise<{ id: string; supervisor: string; terminated: true }> {
    for (const supervisor of this.supervisors) {
      if (await supervisor.terminateChild(id)) return { id, supervisor: supervisor.name, terminated: true };
    }
    throw new NotFoundException(`No running task with id "${id}".`);
  }
}
