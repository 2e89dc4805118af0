import { Controller, HttpCode, HttpStatus, Param, Post } from '@nestjs/common';
import { NewsletterParams } from './newsletter.dto.js';
import { NewslettersService, type SendAccepted } from './newsletters.service.js';

@Controller('newsletters')
export class NewslettersController {
  constructor(private readonly newsletters: NewslettersService) {}

  /** 202 with the task id at once (with `REDIS_URL`: once the send is stored in Redis); watch it with `GET /tasks`. */
  @Post(':id/send')
  @HttpCode(HttpStatus.ACCEPTED)
  send(@Param() { id }: NewsletterParams): Promise<SendAccepted> {
    return this.newsletters.send(id);
  }
}
