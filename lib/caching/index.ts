export * from './interfaces/cache-module-options.interface.js';
