export * from './interfaces/fan-out-module-options.interface.js';
