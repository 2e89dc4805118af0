import { Injectable } from '@nestjs/common';
import { FanOut, InjectSupervisor, Interval, TaskSupervisor } from 'nestjs-concurrency';

export interface FinishedTask {
  name: string;
  attempt: number;
}

@Injectable()
export class AppService {
  ticks = 0;
  readonly finished: FinishedTask[] = [];

  constructor(
    @InjectSupervisor() private readonly supervisor: TaskSupervisor,
    private readonly fanOut: FanOut,
  ) {}

  @Interval(100, { name: 'heartbeat' })
  heartbeat(): void {
    this.ticks++;
  }

  /** A supervised task that fails its first attempt: the supervisor restarts it ('transient'). */
  startTask(name: string): string {
    const ref = this.supervisor.startChild(
      async ({ attempt }) => {
        await new Promise((resolve) => setTimeout(resolve, 10));
        if (attempt === 1) throw new Error(`${name}: first attempt fails on purpose`);
        this.finished.push({ name, attempt });
      },
      { name, restart: 'transient' },
    );
    return ref.id;
  }

  squares(n: number): Promise<number[]> {
    const inputs = Array.from({ length: n }, (_, i) => i + 1);
    return this.fanOut.map(inputs, async (x) => x * x, { concurrency: 2 });
  }
}
