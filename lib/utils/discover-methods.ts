import type { DiscoveryService, MetadataScanner } from '@nestjs/core';

/** One decorated method found by `discoverMethods`. */
export interface DiscoveredMethod<M> {
  metadata: M;
  /** The provider's or controller's instance; undefined for a request-scoped class (no static instance). */
  instance: object | undefined;
  className: string;
  methodName: string;
  /** False for a request- or transient-scoped class: the caller refuses its methods loudly. */
  staticTree: boolean;
}

/**
 * Internal: every method of every controller and provider that `read` finds metadata on, for the explorers of jobs
 * and durable task handlers. Alias providers (`{ provide: X, useExisting: Svc }`) list Svc's instance again and are
 * skipped, so a method is found once (as in @nestjs/schedule's explorer). A request-scoped class has no static
 * instance: its prototype is read all the same, so that its decorated methods are refused rather than ignored.
 */
export function* discoverMethods<M>(
  discovery: DiscoveryService,
  scanner: MetadataScanner,
  read: (method: unknown) => M | undefined,
): Generator<DiscoveredMethod<M>> {
  for (const wrapper of [...discovery.getControllers(), ...discovery.getProviders()]) {
    if (wrapper.isAlias) continue;
    const { instance } = wrapper;
    const staticTree = wrapper.isDependencyTreeStatic();
    const prototype = (
      instance && typeof instance === 'object'
        ? Object.getPrototypeOf(instance)
        : !staticTree && !wrapper.inject && typeof wrapper.metatype === 'function'
          ? wrapper.metatype.prototype
          : null
    ) as object | null;
    if (!prototype) continue;
    const className = (prototype.constructor as { name?: string } | undefined)?.name || String(wrapper.name);
    for (const methodName of scanner.getAllMethodNames(prototype)) {
      const metadata = read((prototype as Record<string, unknown>)[methodName]);
      if (metadata === undefined || metadata === null) continue;
      yield {
        metadata,
        instance: instance && typeof instance === 'object' ? instance : undefined,
        className,
        methodName,
        staticTree,
      };
    }
  }
}
