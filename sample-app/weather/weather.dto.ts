import { IsNumber, Matches, Max, Min } from 'class-validator';

export class CityParams {
  @Matches(/^[a-z][a-z-]{0,39}$/, { message: 'city must be 1-40 lowercase letters or dashes' })
  city: string;
}

export class CorrectReadingDto {
  @IsNumber()
  @Min(-90)
  @Max(60)
  temperatureC: number;
}
