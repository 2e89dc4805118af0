import { Controller, type INestApplication, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  type ClientProxy,
  ClientProxyFactory,
  MessagePattern,
  type MicroserviceOptions,
  Transport,
} from '@nestjs/microservices';
import { Cached, ConcurrencyModule } from 'nestjs-concurrency';
import { lastValueFrom } from 'rxjs';
import { freePort, RedisServer, redisAvailable } from '../utils/redis-server.js';

let runs = 0;

@Controller()
class TcpWhoController {
  @MessagePattern('whoami', Transport.TCP)
  @Cached({ ttl: 60_000 })
  who() {
    runs++;
    return 'tcp handler';
  }
}

@Controller()
class RedisWhoController {
  @MessagePattern('whoami', Transport.REDIS)
  @Cached({ ttl: 60_000 })
  who() {
    runs++;
    return 'redis handler';
  }
}

@Module({ imports: [ConcurrencyModule.forRoot()], controllers: [TcpWhoController, RedisWhoController] })
class HybridModule {}

describe.skipIf(!redisAvailable)('a hybrid app with one pattern on two transports', () => {
  let redis: RedisServer;
  let app: INestApplication;
  const clients: ClientProxy[] = [];

  afterEach(async () => {
    for (const client of clients.splice(0)) await client.close();
    await app?.close();
    await redis?.stop();
  });

  it('keeps the replies of two handlers of one pattern apart (a transport-bound handler each)', async () => {
    redis = await RedisServer.start();
    const port = await freePort();
    app = await NestFactory.create(HybridModule, { logger: false, abortOnError: false });
    app.connectMicroservice<MicroserviceOptions>({ transport: Transport.TCP, options: { host: '127.0.0.1', port } });
    app.connectMicroservice<MicroserviceOptions>({
      transport: Transport.REDIS,
      options: { host: '127.0.0.1', port: redis.port },
    });
    await app.startAllMicroservices();
    await app.init();
    const tcp = ClientProxyFactory.create({ transport: Transport.TCP, options: { host: '127.0.0.1', port } });
    const viaRedis = ClientProxyFactory.create({
      transport: Transport.REDIS,
      options: { host: '127.0.0.1', port: redis.port },
    });
    clients.push(tcp, viaRedis);
    expect(await lastValueFrom(tcp.send('whoami', {}))).toBe('tcp handler');
    expect(await lastValueFrom(viaRedis.send('whoami', {}))).toBe('redis handler');
    expect(await lastValueFrom(tcp.send('whoami', {}))).toBe('tcp handler');
    expect(runs).toBe(2);
  });
});
