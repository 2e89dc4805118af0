// Verbatim from docs/configuration.md (test/compat/docs-samples.sh checks they stay the same): the documented sample, built and run by this app.
import { Module } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { ConcurrencyModule } from 'nestjs-concurrency';

@Module({
  imports: [
    ConfigModule.forRoot(),
    ConcurrencyModule.forRootAsync({
      imports: [ConfigModule],
      inject: [ConfigService],
      useFactory: (config: ConfigService) => ({
        shutdownTimeout: Number(config.get('SHUTDOWN_TIMEOUT') ?? 5000), // "250" -> 250
        fanOut: { concurrency: Number(config.get('FAN_OUT_CONCURRENCY') ?? 16) },
      }),
    }),
  ],
})
export class AppModule {}
