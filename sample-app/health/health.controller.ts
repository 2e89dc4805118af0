import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { ConcurrencyHealthIndicator } from 'nestjs-concurrency';

/**
 * GET /health through @nestjs/terminus: 200 while the module is healthy, 503 with the failed parts named while the
 * app shuts down, a configured Redis (job lock, cache L2, durable tasks) does not answer, or a job overruns its timeout.
 */
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly concurrency: ConcurrencyHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.concurrency.check()]);
  }
}
