import { Controller, Get, HttpCode, Param, ParseIntPipe, Post, Query } from '@nestjs/common';
import { Cached } from 'nestjs-concurrency';
import { AppService, FinishedTask } from './app.service';

@Controller()
export class AppController {
  private computed = 0;

  constructor(private readonly app: AppService) {}

  @Get('status')
  status(): { ticks: number; finished: FinishedTask[] } {
    return { ticks: this.app.ticks, finished: this.app.finished };
  }

  @Post('tasks/:name')
  @HttpCode(202)
  start(@Param('name') name: string): { id: string } {
    return { id: this.app.startTask(name) };
  }

  @Get('squares')
  squares(@Query('n', ParseIntPipe) n: number): Promise<number[]> {
    return this.app.squares(n);
  }

  @Get('cached')
  @Cached({ ttl: 60_000 })
  cached(): { computed: number } {
    return { computed: ++this.computed };
  }
}
