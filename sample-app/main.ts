import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { adapterFromEnv, createApp } from './create-app.js';

const adapter = adapterFromEnv();
const app = await createApp(adapter);
const port = Number(process.env.PORT ?? 3000);
await app.listen(port, '0.0.0.0');
Logger.log(`Sample app listening on http://localhost:${port} (${adapter})`, 'Bootstrap');
