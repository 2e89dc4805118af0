import { ConfigurableModuleBuilder } from '@nestjs/common';
import type { ConcurrencyModuleOptions } from './interfaces/concurrency-module-options.interface.js';

export const {
  ConfigurableModuleClass,
  MODULE_OPTIONS_TOKEN: RAW_OPTIONS_TOKEN,
  OPTIONS_TYPE,
  ASYNC_OPTIONS_TYPE,
} = new ConfigurableModuleBuilder<ConcurrencyModuleOptions>({ moduleName: 'Concurrency' })
  .setClassMethodName('forRoot')
  // forRootAsync({ useClass | useExisting }) calls createConcurrencyOptions(), as CacheModule calls createCacheOptions()
  .setFactoryMethodName('createConcurrencyOptions')
  .build();
