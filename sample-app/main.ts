import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { adapterFromEnv, createApp } from './create-app.js';
import { startTracing } from './tracing.js';

const stopTracing = await startTracing(); // before the app boots: tracing is decided once, at boot
const adapter = adapterFromEnv();
const app = await createApp(adapter);
if (stopTracing) process.once('beforeExit', () => void stopTracing());
const port = Number(process.env.PORT ?? 3000);
await app.listen(port, '0.0.0.0');
Logger.log(`Sample app listening on http://localhost:${port} (${adapter})`, 'Bootstrap');
