import { Module } from '@nestjs/common';
import { ConcurrencyModule } from 'nestjs-concurrency';
import { AppController } from './app.controller';
import { AppService } from './app.service';

@Module({
  imports: [ConcurrencyModule.forRoot()],
  controllers: [AppController],
  providers: [AppService],
})
export class AppModule {}
