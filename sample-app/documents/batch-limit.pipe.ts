import { PayloadTooLargeException, type PipeTransform } from '@nestjs/common';

/** Refuses a batch over `max` items with 413 before any item is validated. */
export class BatchLimitPipe implements PipeTransform<unknown, unknown> {
  constructor(private readonly max: number) {}

  transform(value: unknown): unknown {
    if (Array.isArray(value) && value.length > this.max) {
      throw new PayloadTooLargeException(`A batch holds at most ${this.max} documents, got ${value.length}.`);
    }
    return value;
  }
}
