import { Injectable } from '@nestjs/common';
import { CacheService } from 'nestjs-concurrency';
import { type Reading, WeatherUpstreamService } from './weather-upstream.service.js';

/** Readings stay one minute in the data cache; the response cache in front of the route has its own TTL. */
export const READING_TTL_MS = 60_000;

@Injectable()
export class WeatherService {
  constructor(
    private readonly upstream: WeatherUpstreamService,
    private readonly cache: CacheService,
  ) {}

  /** The latest reading: once per city under concurrency (`getOrStore`), from the slow upstream on a miss. */
  current(city: string): Promise<Reading> {
    return this.cache.getOrStore(`reading:${city}`, () => this.upstream.fetch(city), READING_TTL_MS);
  }

  /** Fetches a fresh reading and stores it (used by the refresher job). */
  async refresh(city: string, signal: AbortSignal): Promise<Reading> {
    const reading = await this.upstream.fetch(city, signal);
    await this.cache.set(`reading:${city}`, reading, READING_TTL_MS);
    return reading;
  }

  async correct(city: string, temperatureC: number): Promise<void> {
    this.upstream.correct(city, temperatureC);
    await this.cache.del(`reading:${city}`);
  }
}
