// Verbatim from docs/supervisor.md (test/compat/docs-samples.sh checks they stay the same): the documented sample, built and run by this app.
import { Injectable, Module } from '@nestjs/common';
import { ConcurrencyModule, InjectSupervisor, TaskSupervisor } from 'nestjs-concurrency';

interface User {
  id: string;
  email: string;
}

@Injectable()
export class Mailer {
  async sendWelcome(user: User, opts: { signal: AbortSignal }): Promise<void> {
    await fetch('https://mail.example.com/send', { method: 'POST', body: user.email, signal: opts.signal });
  }
}

@Injectable()
export class SignupService {
  constructor(
    @InjectSupervisor('emails') private readonly emails: TaskSupervisor,
    private readonly mailer: Mailer,
  ) {}

  signup(user: User): { id: string } {
    // returns at once; the email is sent on a later tick, supervised
    this.emails.startChild((ctx) => this.mailer.sendWelcome(user, { signal: ctx.signal }), {
      name: `welcome:${user.id}`,
      restart: 'transient', // retry on failure, within maxRestarts/maxSeconds
      timeout: 10_000,
    });
    return { id: user.id };
  }
}

@Module({
  imports: [ConcurrencyModule.forRoot({ supervisors: { emails: { maxChildren: 500, shutdownTimeout: 10_000 } } })],
  providers: [Mailer, SignupService],
})
export class AppModule {}
