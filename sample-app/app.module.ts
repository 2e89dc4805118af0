import { Module } from '@nestjs/common';
import { ConcurrencyModule } from 'nestjs-concurrency';
import { HealthController } from './health/health.controller.js';

@Module({
  imports: [ConcurrencyModule.forRoot()],
  controllers: [HealthController],
})
export class AppModule {}
