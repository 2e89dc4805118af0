import {
  type CanActivate,
  type ExecutionContext,
  ForbiddenException,
  Injectable,
  UnauthorizedException,
} from '@nestjs/common';
import { createHash, timingSafeEqual } from 'node:crypto';
import { SampleConfig } from './sample-config.js';

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);
const digest = (text: string) => createHash('sha256').update(text).digest();

/**
 * Guards the dashboard (/_concurrency): with DASHBOARD_TOKEN set, only requests with `Authorization: Bearer <token>`
 * pass (401 otherwise); without it, only requests from this machine (loopback) do, for local development (403).
 */
@Injectable()
export class DashboardGuard implements CanActivate {
  constructor(private readonly config: SampleConfig) {}

  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<{
      headers: Record<string, string | string[] | undefined>;
      socket?: { remoteAddress?: string };
      raw?: { socket?: { remoteAddress?: string } };
    }>();
    const token = this.config.dashboardToken;
    if (token) {
      const given = request.headers.authorization;
      // Compared as digests: equal lengths for timingSafeEqual, and no early exit on the first differing byte.
      if (typeof given === 'string' && timingSafeEqual(digest(given), digest(`Bearer ${token}`))) return true;
      throw new UnauthorizedException('The dashboard needs Authorization: Bearer <DASHBOARD_TOKEN>.');
    }
    const address = request.socket?.remoteAddress ?? request.raw?.socket?.remoteAddress;
    if (address !== undefined && LOOPBACK.has(address)) return true;
    throw new ForbiddenException('Without DASHBOARD_TOKEN the dashboard answers on loopback only.');
  }
}
