import { Controller, HttpCode, HttpStatus, Param, Post } from '@nestjs/common';
import { NewsletterParams } from './newsletter.dto.js';
import { NewslettersService, type SendAccepted } from './newsletters.service.js';

@Controller('newsletters')
export class NewslettersController {
  constructor(private readonly newsletters: NewslettersService) {}

  /** 202 with the task id at once; watch it with `GET /tasks`. */
  @Post(':id/send')
  @HttpCode(HttpStatus.ACCEPTED)
  send(@Param() { id }: NewsletterParams): SendAccepted {
    return this.newsletters.send(id);
  }
}
