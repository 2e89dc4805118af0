import { Global, Module } from '@nestjs/common';
import { RedisConnections } from './redis-connections.js';
import { SampleConfig } from './sample-config.js';

@Global()
@Module({
  providers: [
    { provide: SampleConfig, useFactory: SampleConfig.fromEnv },
    {
      provide: RedisConnections,
      inject: [SampleConfig],
      useFactory: (config: SampleConfig) => (config.redisUrl ? new RedisConnections(config.redisUrl) : null),
    },
  ],
  exports: [SampleConfig, RedisConnections],
})
export class SampleConfigModule {}
