import { Module } from '@nestjs/common';
import { WeatherUpstreamService } from './weather-upstream.service.js';
import { WeatherController } from './weather.controller.js';
import { WeatherService } from './weather.service.js';

@Module({
  controllers: [WeatherController],
  providers: [WeatherUpstreamService, WeatherService],
  exports: [WeatherService, WeatherUpstreamService],
})
export class WeatherModule {}
