import { Type } from 'class-transformer';
import { IsInt, IsOptional, Max, Min } from 'class-validator';

export class DigestQuery {
  /** sha256 rounds per document: about 2.5 ms of CPU per 1,000 rounds. */
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(1_000_000)
  rounds: number = 10_000;
}
