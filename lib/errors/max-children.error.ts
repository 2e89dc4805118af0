/** `startChild()`/`async()` on a supervisor that already runs `maxChildren` children (OTP's `{:error, :max_children}`). */
export class MaxChildrenError extends Error {
  constructor(
    readonly supervisor: string,
    readonly max: number,
  ) {
    super(
      `Supervisor "${supervisor}" already runs ${max} children (maxChildren). ` +
        'Raise maxChildren or wait for children to finish.',
    );
    this.name = 'MaxChildrenError';
  }
}
