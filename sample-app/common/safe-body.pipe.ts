import { type ArgumentMetadata, BadRequestException, type PipeTransform } from '@nestjs/common';

/** Keys that reach an object's prototype or constructor when a body is transformed into a class instance. */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/**
 * Refuses, with 400, a request body that nests deeper than `maxDepth` or holds a key that names the prototype chain,
 * before any other pipe sees it. class-transformer recurses once per level (about 1,500 nested arrays, a 3 KB body,
 * overflow the stack: a 500), and it drops a `constructor` key silently, so `forbidNonWhitelisted` never sees it.
 * The walk is iterative: it cannot overflow the stack itself, and it is bounded by the body parser's size limit.
 */
export class SafeBodyPipe implements PipeTransform<unknown, unknown> {
  constructor(private readonly maxDepth = 32) {}

  transform(value: unknown, metadata: ArgumentMetadata): unknown {
    if (metadata.type !== 'body' || value === null || typeof value !== 'object') return value;
    const stack: Array<[node: object, depth: number]> = [[value, 1]];
    while (stack.length !== 0) {
      const [node, depth] = stack.pop()!;
      if (depth > this.maxDepth) {
        throw new BadRequestException(`The request body nests deeper than ${this.maxDepth} levels.`);
      }
      for (const key of Object.keys(node)) {
        if (FORBIDDEN_KEYS.has(key)) throw new BadRequestException(`property ${key} should not exist`);
        const child = (node as Record<string, unknown>)[key];
        if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
      }
    }
    return value;
  }
}
