import { Module } from '@nestjs/common';
import { MailerService } from './mailer.service.js';
import { NewslettersController } from './newsletters.controller.js';
import { NewslettersService } from './newsletters.service.js';

@Module({
  controllers: [NewslettersController],
  providers: [MailerService, NewslettersService],
  exports: [MailerService],
})
export class NewslettersModule {}
