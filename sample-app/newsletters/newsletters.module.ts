import { Module } from '@nestjs/common';
import { MailerService } from './mailer.service.js';
import { NewsletterSender } from './newsletter-sender.js';
import { NewslettersController } from './newsletters.controller.js';
import { NewslettersService } from './newsletters.service.js';

@Module({
  controllers: [NewslettersController],
  providers: [MailerService, NewslettersService, NewsletterSender],
  exports: [MailerService],
})
export class NewslettersModule {}
