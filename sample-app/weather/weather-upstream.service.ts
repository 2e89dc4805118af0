import { Injectable } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { SampleConfig } from '../config/sample-config.js';

export interface Reading {
  city: string;
  temperatureC: number;
  observedAt: string;
}

/** A simulated slow weather API (`UPSTREAM_DELAY_MS`). Counts calls so the stampede protection can be seen. */
@Injectable()
export class WeatherUpstreamService {
  calls = 0;
  private readonly overrides = new Map<string, number>();

  constructor(private readonly config: SampleConfig) {}

  async fetch(city: string, signal?: AbortSignal): Promise<Reading> {
    this.calls++;
    await sleep(this.config.upstreamDelayMs, undefined, { signal });
    const temperatureC = this.overrides.get(city) ?? Math.round((Math.random() * 35 - 5) * 10) / 10;
    return { city, temperatureC, observedAt: new Date().toISOString() };
  }

  /** A manual correction (`PUT /weather/:city`). */
  correct(city: string, temperatureC: number): void {
    this.overrides.set(city, temperatureC);
  }
}
