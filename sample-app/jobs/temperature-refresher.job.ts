import { Injectable, Logger } from '@nestjs/common';
import { FanOut, Interval, type JobContext } from 'nestjs-concurrency';
import { SampleConfig } from '../config/sample-config.js';
import { WeatherService } from '../weather/weather.service.js';

/**
 * Keeps the readings of the configured cities warm. Fixed delay: the next run starts 30 s after the previous one
 * ended (Elixir's `Process.send_after` pattern), so a slow upstream never makes runs pile up.
 */
@Injectable()
export class TemperatureRefresherJob {
  private readonly logger = new Logger(TemperatureRefresherJob.name);

  constructor(
    private readonly config: SampleConfig,
    private readonly weather: WeatherService,
    private readonly fanOut: FanOut,
  ) {}

  @Interval(30_000, { name: 'refresh-temperatures', mode: 'fixed-delay', initialDelay: 1_000, timeout: 20_000 })
  async refresh({ signal }: JobContext): Promise<number> {
    const readings = await this.fanOut.map(
      this.config.cities,
      (city, item) => this.weather.refresh(city, item.signal),
      {
        concurrency: 4,
        signal,
      },
    );
    this.logger.log(`Refreshed ${readings.length} cities`);
    return readings.length;
  }
}
