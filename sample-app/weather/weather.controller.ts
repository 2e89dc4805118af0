import { Body, Controller, Get, Param, Put, type ExecutionContext } from '@nestjs/common';
import { CacheEvict, Cached, CacheService, type CacheStats } from 'nestjs-concurrency';
import type { Reading } from './weather-upstream.service.js';
import { CityParams, CorrectReadingDto } from './weather.dto.js';
import { WeatherService } from './weather.service.js';

const cityTag = (ctx: ExecutionContext) =>
  `city:${ctx.switchToHttp().getRequest<{ params: CityParams }>().params.city}`;

@Controller()
export class WeatherController {
  constructor(
    private readonly weather: WeatherService,
    private readonly cache: CacheService,
  ) {}

  /** Fresh for 10 s, then served stale (X-Cache: STALE) for up to a minute while one refresh runs in the background. */
  @Get('weather/:city')
  @Cached({ ttl: 10_000, staleWhileRevalidate: 60_000, tags: ['weather', cityTag] })
  get(@Param() { city }: CityParams): Promise<Reading> {
    return this.weather.current(city);
  }

  /** A manual correction; evicts the city's cached responses once it succeeded. */
  @Put('weather/:city')
  @CacheEvict({ tags: [cityTag] })
  async correct(
    @Param() { city }: CityParams,
    @Body() body: CorrectReadingDto,
  ): Promise<{ city: string; temperatureC: number }> {
    await this.weather.correct(city, body.temperatureC);
    return { city, temperatureC: body.temperatureC };
  }

  @Get('cache/stats')
  stats(): CacheStats {
    return this.cache.stats();
  }
}
