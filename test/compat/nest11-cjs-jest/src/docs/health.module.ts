// Verbatim from docs/observability.md (test/compat/docs-samples.sh checks they stay the same): the documented sample, built and run by this app.
import { Controller, Get, Module } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { ConcurrencyHealthIndicator, ConcurrencyModule } from 'nestjs-concurrency';

@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly concurrency: ConcurrencyHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    // isHealthy(key) is check(key) under terminus' naming; the key defaults to 'concurrency'
    return this.health.check([() => this.concurrency.isHealthy('concurrency')]);
  }
}

@Module({
  imports: [ConcurrencyModule.forRoot(), TerminusModule],
  controllers: [HealthController],
})
export class AppModule {}
