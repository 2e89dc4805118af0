import { Module } from '@nestjs/common';
import { ConcurrencyModule } from 'nestjs-concurrency';
import { concurrencyOptions } from './config/concurrency-options.js';
import { DashboardGuard } from './config/dashboard.guard.js';
import { RedisConnections } from './config/redis-connections.js';
import { SampleConfigModule } from './config/sample-config.module.js';
import { DocumentsModule } from './documents/documents.module.js';
import { HealthModule } from './health/health.module.js';
import { JobsModule } from './jobs/jobs.module.js';
import { NewslettersModule } from './newsletters/newsletters.module.js';
import { TasksController } from './tasks/tasks.controller.js';
import { WeatherModule } from './weather/weather.module.js';

@Module({
  imports: [
    SampleConfigModule,
    ConcurrencyModule.forRootAsync({
      inject: [RedisConnections],
      useFactory: concurrencyOptions,
      // The live dashboard at /_concurrency, behind DASHBOARD_TOKEN (or loopback only without it).
      dashboard: { path: '_concurrency', guard: DashboardGuard },
    }),
    NewslettersModule,
    DocumentsModule,
    WeatherModule,
    JobsModule,
    HealthModule,
  ],
  controllers: [TasksController],
})
export class AppModule {}
