/**
 * @internal A gate for log lines that repeat during an outage (every reconnect attempt emits an error): open once,
 * then at most once per `everyMs` per key.
 */
export class LogThrottle {
  private readonly last = new Map<string, number>();

  constructor(private readonly everyMs = 10_000) {}

  allow(key: string): boolean {
    const now = Date.now();
    const last = this.last.get(key);
    if (last !== undefined && now - last < this.everyMs) return false;
    this.last.set(key, now);
    return true;
  }
}
