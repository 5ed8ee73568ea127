import type { ExpectedRevision } from "./store.ts";

/** What went wrong in the event store. */
export type EventStoreErrorCode =
  /** The stream's revision is not the one the caller expected. */
  | "wrong_expected_revision"
  /** An event id is already stored with different content. */
  | "event_id_conflict"
  /** A stream name, event or option the store cannot accept. */
  | "invalid_argument"
  /** The store was closed. */
  | "closed"
  /** The database failed or refused; `cause` keeps its error (with SQLSTATE for PostgreSQL). */
  | "storage";

/** The one error type of the event store; `code` says what failed, `cause` keeps the underlying error. */
export class EventStoreError extends Error {
  override readonly name: string = "EventStoreError";
  readonly code: EventStoreErrorCode;

  constructor(code: EventStoreErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}

export class WrongExpectedRevisionError extends EventStoreError {
  override readonly name: string = "WrongExpectedRevisionError";
  readonly stream: string;
  readonly expected: ExpectedRevision;
  /** The stream's last revision, undefined when the stream does not exist. */
  readonly actual: bigint | undefined;

  constructor(stream: string, expected: ExpectedRevision, actual: bigint | undefined) {
    super(
      "wrong_expected_revision",
      `stream ${JSON.stringify(stream)}: expected revision ${String(expected)}, ` +
        `but ${actual === undefined ? "the stream does not exist" : `its last revision is ${actual}`}`,
    );
    this.stream = stream;
    this.expected = expected;
    this.actual = actual;
  }
}

export class EventIdConflictError extends EventStoreError {
  override readonly name: string = "EventIdConflictError";
  readonly eventId: string;

  constructor(eventId: string, difference: string) {
    super(
      "event_id_conflict",
      `event id ${eventId} is already stored with a different ${difference}; ` +
        "an event id may be re-appended only with identical content",
    );
    this.eventId = eventId;
  }
}
