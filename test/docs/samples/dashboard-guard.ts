// Copied from docs/observability.md (the dashboard guard recipe); keep the two the same.
import { type CanActivate, type ExecutionContext, Injectable, UnauthorizedException } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { timingSafeEqual } from 'node:crypto';

/**
 * HTTP Basic authentication: the browser asks for a user and password once, then sends them with every request to
 * the page, its live events (EventSource) and its buttons. Serve it over HTTPS.
 */
@Injectable()
export class DashboardGuard implements CanActivate {
  private readonly expected = Buffer.from(
    `Basic ${Buffer.from(`ops:${process.env.DASHBOARD_PASSWORD ?? ''}`).toString('base64')}`,
  );

  constructor(private readonly adapterHost: HttpAdapterHost) {}

  canActivate(context: ExecutionContext): boolean {
    const http = context.switchToHttp();
    const header = Buffer.from(
      String(http.getRequest<{ headers: Record<string, unknown> }>().headers.authorization ?? ''),
    );
    const ok =
      process.env.DASHBOARD_PASSWORD !== undefined &&
      header.length === this.expected.length &&
      timingSafeEqual(header, this.expected);
    if (ok) return true;
    this.adapterHost.httpAdapter.setHeader(http.getResponse(), 'WWW-Authenticate', 'Basic realm="concurrency"');
    throw new UnauthorizedException();
  }
}
