/**
 * A worker process of bench/durable's SIGKILL run: a @TaskHandler('chunk') that works ~1 ms, counts its runs per
 * task in a Redis hash (to count tasks that ran twice) and marks the task done in a Redis set.
 */
import 'reflect-metadata';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Redis } from 'ioredis';
import { ConcurrencyModule, TaskHandler } from 'nestjs-concurrency';

const url = process.env.REDIS_URL as string;
const prefix = process.env.PREFIX as string;
const redis = new Redis(url);

@Injectable()
class Chunks {
  @TaskHandler('chunk')
  async chunk(payload: { i: number }) {
    await redis.hincrby(`${prefix}:bench-runs`, String(payload.i), 1);
    await new Promise((resolve) => setTimeout(resolve, 1));
    await redis.sadd(`${prefix}:bench-done`, String(payload.i));
  }
}

@Module({
  imports: [ConcurrencyModule.forRoot({ durable: { connection: url, prefix, concurrency: 16, stalledTimeout: 5000 } })],
  providers: [Chunks],
})
class WorkerModule {}

const app = await NestFactory.createApplicationContext(WorkerModule, { logger: ['error'] });
app.enableShutdownHooks();
