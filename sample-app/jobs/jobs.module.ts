import { Module } from '@nestjs/common';
import { NewslettersModule } from '../newsletters/newsletters.module.js';
import { WeatherModule } from '../weather/weather.module.js';
import { JobsController } from './jobs.controller.js';
import { NightlyReportJob } from './nightly-report.job.js';
import { TemperatureRefresherJob } from './temperature-refresher.job.js';

@Module({
  imports: [WeatherModule, NewslettersModule],
  controllers: [JobsController],
  providers: [TemperatureRefresherJob, NightlyReportJob],
})
export class JobsModule {}
