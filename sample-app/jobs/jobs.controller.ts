import {
  ConflictException,
  Controller,
  Get,
  HttpCode,
  HttpStatus,
  InternalServerErrorException,
  NotFoundException,
  Param,
  Post,
} from '@nestjs/common';
import { type JobInfo, JobRegistry, JobRunningError, UnknownJobError } from 'nestjs-concurrency';

@Controller('jobs')
export class JobsController {
  constructor(private readonly jobs: JobRegistry) {}

  @Get()
  list(): JobInfo[] {
    return this.jobs.list();
  }

  /** Runs the job now and answers when the run ended. */
  @Post(':name/run')
  @HttpCode(HttpStatus.OK)
  async run(@Param('name') name: string): Promise<JobInfo> {
    try {
      await this.jobs.trigger(name);
    } catch (error) {
      throw this.toHttp(error, name);
    }
    return this.jobs.get(name);
  }

  @Post(':name/pause')
  @HttpCode(HttpStatus.OK)
  pause(@Param('name') name: string): JobInfo {
    return this.control(name, () => this.jobs.pause(name));
  }

  @Post(':name/resume')
  @HttpCode(HttpStatus.OK)
  resume(@Param('name') name: string): JobInfo {
    return this.control(name, () => this.jobs.resume(name));
  }

  private control(name: string, action: () => void): JobInfo {
    try {
      action();
    } catch (error) {
      throw this.toHttp(error, name);
    }
    return this.jobs.get(name);
  }

  private toHttp(error: unknown, name: string): Error {
    if (error instanceof UnknownJobError) return new NotFoundException(error.message);
    if (error instanceof JobRunningError) return new ConflictException(error.message);
    const message = error instanceof Error ? error.message : String(error);
    return new InternalServerErrorException(`Job "${name}" failed: ${message}`);
  }
}
