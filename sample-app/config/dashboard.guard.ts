import {
  type CanActivate,
  type ExecutionContext,
  ForbiddenException,
  Injectable,
  UnauthorizedException,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { createHash, timingSafeEqual } from 'node:crypto';
import { SampleConfig } from './sample-config.js';

type DashboardRequest = {
  headers: Record<string, string | string[] | undefined>;
  socket?: { remoteAddress?: string };
  raw?: { socket?: { remoteAddress?: string } };
};

const LOOPBACK_ADDRESSES = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);
/** `Host` values of this machine, with or without a port: anything else is a rebound DNS name or a proxy. */
const LOOPBACK_HOST = /^(?:localhost|127\.0\.0\.1|\[::1\])(?::\d{1,5})?$/i;
/** Headers a reverse proxy adds: behind one, every client looks local, so loopback mode refuses them. */
const FORWARDING_HEADERS = ['forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-real-ip'];
const digest = (text: string) => createHash('sha256').update(text).digest();
/** Compared as digests: equal lengths for timingSafeEqual, and no early exit on the first differing byte. */
const sameSecret = (given: string, expected: string) => timingSafeEqual(digest(given), digest(expected));

/**
 * Guards the dashboard (/_concurrency).
 *
 * - With DASHBOARD_TOKEN set: a person logs in from the browser's own prompt (HTTP Basic, any user name, the token
 *   as password; the browser then sends it with the page's every request, the event stream included), and scripts
 *   send `Authorization: Bearer <token>` (the scheme in any case). Anything else: 401 with the Basic challenge.
 * - Without it, for local development: only requests from this machine, to this machine. The peer address must be
 *   loopback, the `Host` must name loopback (a page of another origin whose DNS name was rebound to 127.0.0.1 sends
 *   its own name) and no forwarding header may be present (a local reverse proxy makes every client look local). 403.
 */
@Injectable()
export class DashboardGuard implements CanActivate {
  constructor(
    private readonly config: SampleConfig,
    private readonly adapterHost: HttpAdapterHost,
  ) {}

  canActivate(context: ExecutionContext): boolean {
    const request = context.switchToHttp().getRequest<DashboardRequest>();
    const token = this.config.dashboardToken;
    if (token) {
      if (this.authorized(request.headers.authorization, token)) return true;
      // The challenge makes the browser ask for the credentials, then send them with every request of the page.
      this.adapterHost.httpAdapter.setHeader(
        context.switchToHttp().getResponse(),
        'WWW-Authenticate',
        'Basic realm="concurrency dashboard", charset="UTF-8"',
      );
      throw new UnauthorizedException(
        'The dashboard needs DASHBOARD_TOKEN: as the password of the browser prompt, or Authorization: Bearer <token>.',
      );
    }
    const address = request.socket?.remoteAddress ?? request.raw?.socket?.remoteAddress;
    const host = request.headers.host;
    if (
      address !== undefined &&
      LOOPBACK_ADDRESSES.has(address) &&
      typeof host === 'string' &&
      LOOPBACK_HOST.test(host) &&
      FORWARDING_HEADERS.every((name) => request.headers[name] === undefined)
    ) {
      return true;
    }
    throw new ForbiddenException(
      'Without DASHBOARD_TOKEN the dashboard answers only to this machine: a loopback address and Host, no proxy.',
    );
  }

  private authorized(header: string | string[] | undefined, token: string): boolean {
    if (typeof header !== 'string') return false;
    const space = header.indexOf(' ');
    if (space < 0) return false;
    const scheme = header.slice(0, space).toLowerCase();
    const value = header.slice(space + 1).trim();
    if (scheme === 'bearer') return sameSecret(value, token);
    if (scheme === 'basic') {
      const decoded = Buffer.from(value, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      return colon >= 0 && sameSecret(decoded.slice(colon + 1), token);
    }
    return false;
  }
}
