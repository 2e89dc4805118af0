import { DURATIONS_KEPT, DurationRings } from '../../lib/observability/dashboard/duration-rings.js';

describe('DurationRings', () => {
  it('gives nearest-rank p50/p95/p99 of what was recorded, null for a key never recorded', () => {
    const rings = new DurationRings();
    for (let i = 0; i < 100; i++) rings.record('job', 100 - i);
    expect(rings.percentiles('job')).toEqual({ count: 100, p50: 50, p95: 95, p99: 99 });
    expect(rings.percentiles('other')).toBeNull();
  });

  it('keeps only the most recent durations, and ignores values that are not durations', () => {
    const rings = new DurationRings();
    for (let i = 0; i < 1000; i++) rings.record('sup', 5000);
    for (let i = 0; i < DURATIONS_KEPT; i++) rings.record('sup', 1);
    rings.record('sup', Number.NaN);
    rings.record('sup', -1);
    expect(rings.percentiles('sup')).toEqual({ count: DURATIONS_KEPT, p50: 1, p95: 1, p99: 1 });
  });
});
