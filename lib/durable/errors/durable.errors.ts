/** A `@TaskHandler` that cannot be registered (duplicate name, request-scoped provider, invalid option): fails boot. */
export class InvalidTaskHandlerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidTaskHandlerError';
  }
}

/** `DurableSupervisor.startChild()`/`async()` with a task name no `@TaskHandler` of this application has. */
export class UnknownTaskError extends Error {
  constructor(
    readonly task: string,
    message: string,
  ) {
    super(message);
    this.name = 'UnknownTaskError';
  }
}

/** A payload (or option) that cannot be stored: nothing was started. `path` names the offending value. */
export class InvalidPayloadError extends Error {
  constructor(
    readonly task: string,
    readonly path: string,
    message: string,
  ) {
    super(message);
    this.name = 'InvalidPayloadError';
  }
}

/** Redis did not answer in time (`durable.storeTimeout`) or refused: the call did nothing. */
export class DurableUnavailableError extends Error {
  constructor(
    readonly task: string,
    message: string,
    readonly cause?: unknown,
  ) {
    super(message);
    this.name = 'DurableUnavailableError';
  }
}

/** What `DurableTask.await()` rejects with when the task failed on the instance that ran it. */
export class DurableTaskError extends Error {
  constructor(
    readonly task: string,
    readonly id: string,
    /** The failure's message, as stored in Redis by the instance that ran the task. */
    readonly reason: string,
  ) {
    super(`Durable task "${task}" (${id}) failed: ${reason}`);
    this.name = 'DurableTaskError';
  }
}
