/** What went wrong at the bus boundary. */
export type BusErrorCode =
  /** A session id that cannot be a NATS subject token (empty, or with ".", "*", ">" or whitespace). */
  | "invalid_subject"
  /** An Agentgate-Type the registry does not know. */
  | "unknown_type"
  /** Bytes that are not a valid message of their declared type, or an event without its meta. */
  | "malformed_event"
  /** The audit stream exists with a configuration that breaks the contract. */
  | "stream_mismatch"
  /** The publisher's connection is down; it is reconnecting. */
  | "disconnected"
  /** The stream did not confirm an event: no acknowledgement in time, or an error instead of one. */
  | "not_stored";

/** The one error type of the bus contract; `code` says what failed, `cause` keeps the underlying error. */
export class BusError extends Error {
  override readonly name = "BusError";
  readonly code: BusErrorCode;

  constructor(code: BusErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}
