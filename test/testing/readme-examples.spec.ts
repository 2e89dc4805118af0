// The three examples of the README's "Testing your app" section, as written there (imports merged): they run.
import { Controller, HttpCode, Injectable, Param, Post, Get, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { InjectSupervisor, TaskSupervisor, Cron, type JobContext, Cached } from 'nestjs-concurrency';
import { ConcurrencyTester, ConcurrencyTestingModule } from 'nestjs-concurrency/testing';
import request from 'supertest';

describe('README: fire-and-forget controller', () => {
  @Injectable()
  class Reports {
    readonly sent: string[] = [];
    constructor(@InjectSupervisor() private readonly supervisor: TaskSupervisor) {}
    send(to: string): void {
      this.supervisor.startChild(async () => {
        await new Promise((resolve) => setImmediate(resolve)); // the mailer
        this.sent.push(to);
      });
    }
  }

  @Controller('reports')
  class ReportsController {
    constructor(private readonly reports: Reports) {}
    @Post(':to')
    @HttpCode(202)
    send(@Param('to') to: string): void {
      this.reports.send(to);
    }
  }

  it('sends the report after answering 202', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [ConcurrencyTestingModule.forRoot()],
      controllers: [ReportsController],
      providers: [Reports],
    }).compile();
    const app = await moduleRef.createNestApplication().init();
    const tester = app.get(ConcurrencyTester);

    await request(app.getHttpServer()).post('/reports/ana@example.com').expect(202);
    await tester.idle(); // the background work has run
    expect(app.get(Reports).sent).toEqual(['ana@example.com']);
    expect(tester.failures()).toEqual([]); // and nothing failed quietly
    await app.close();
  });
});

describe('README: job', () => {
  @Injectable()
  class Cleanup {
    readonly runs: string[] = [];
    @Cron('0 0 3 * * *', { name: 'cleanup', timeZone: 'UTC' })
    run({ scheduledAt }: JobContext): void {
      this.runs.push(scheduledAt.toISOString());
    }
  }

  it('cleans up at 03:00 UTC every day', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [ConcurrencyTestingModule.forRoot()],
      providers: [Cleanup],
    }).compile();
    const app = await moduleRef.createNestApplication().init();
    const tester = app.get(ConcurrencyTester);

    await tester.advance(2 * 24 * 60 * 60 * 1000);
    expect(app.get(Cleanup).runs).toHaveLength(2);
    expect(app.get(Cleanup).runs.every((at) => at.endsWith('T03:00:00.000Z'))).toBe(true);
    expect(await tester.runJob('cleanup')).toEqual({ status: 'fulfilled', value: undefined });
    await app.close();
  });
});

describe('README: cached route', () => {
  @Controller('prices')
  class PricesController {
    private calls = 0;
    @Get()
    @Cached({ ttl: 60_000 })
    list(): { calls: number } {
      return { calls: ++this.calls };
    }
  }

  describe('GET /prices', () => {
    let app: INestApplication;
    let tester: ConcurrencyTester;

    beforeAll(async () => {
      const moduleRef = await Test.createTestingModule({
        imports: [ConcurrencyTestingModule.forRoot()],
        controllers: [PricesController],
      }).compile();
      app = await moduleRef.createNestApplication().init();
      tester = app.get(ConcurrencyTester);
    });
    afterEach(() => tester.cache.clear());
    afterAll(() => app.close());

    it('is computed once, then served from the cache', async () => {
      await request(app.getHttpServer()).get('/prices').expect('X-Cache', 'MISS');
      await request(app.getHttpServer()).get('/prices').expect('X-Cache', 'HIT');
    });

    it('is computed again in the next test', async () => {
      await request(app.getHttpServer()).get('/prices').expect('X-Cache', 'MISS');
    });
  });
});
