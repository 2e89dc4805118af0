import type { CanActivate, Type } from '@nestjs/common';

/** `ConcurrencyModule.forRoot({ dashboard })`: the live dashboard, served by the module. Off unless given. */
export interface DashboardOptions {
  /** Where the page is served, e.g. `'_concurrency'` (the default): `GET /_concurrency`. */
  path?: string;
  /**
   * The guard every dashboard route goes through (as `@UseGuards(guard)`). Required: boot fails without one, unless
   * `false` is given explicitly (an open dashboard, for local development only).
   */
  guard?: Type<CanActivate> | false;
  /** Hides the Terminate / Run / Pause / Resume buttons and refuses those requests (403). Default false. */
  readOnly?: boolean;
}

/** `dashboard` after validation, every default filled in (in `ResolvedConcurrencyOptions`; not exported). */
export interface ResolvedDashboardOptions {
  path: string;
  guard: Type<CanActivate> | false;
  readOnly: boolean;
}
