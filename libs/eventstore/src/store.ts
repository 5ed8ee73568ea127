/** An event as a producer hands it to the store. */
export interface EventToAppend {
  /** A UUID chosen by the producer: the idempotency key (the bus delivers at least once). */
  eventId: string;
  /** The protobuf message name, e.g. "agentgate.v1.StatementReceived". */
  type: string;
  /** The canonical protobuf bytes of the event. */
  data: Uint8Array;
  occurredAt: Date;
}

/** An event as the store recorded it: where it sits in its stream and in the hash-chained global log. */
export interface RecordedEvent extends EventToAppend {
  stream: string;
  /** 0-based, gapless within the stream. */
  revision: bigint;
  /** 1-based, gapless across the whole log. */
  position: bigint;
  /** Set by the store under its append lock; never decreases along the log. */
  recordedAt: Date;
  /** Lowercase hex SHA-256 of the previous event; 64 zeros for position 1. */
  prevHash: string;
  /** Lowercase hex SHA-256(prevHash ‖ canonical encoding of this event), see chain.ts. */
  hash: string;
}

/**
 * What the caller believes the stream's last revision is: a revision, "no_stream" (must not exist yet),
 * "exists" (must have at least one event) or "any" (no check).
 */
export type ExpectedRevision = bigint | "any" | "no_stream" | "exists";

export interface AppendOptions {
  expectedRevision?: ExpectedRevision;
  signal?: AbortSignal;
}

export interface AppendResult {
  /** Revision of the batch's last event: pass it as `expectedRevision` for the next append (-1n: no stream). */
  nextRevision: bigint;
  /** Global position of the batch's last event (the head position for an empty batch, 0n on an empty log). */
  position: bigint;
}

export interface ReadStreamOptions {
  fromRevision?: bigint;
  signal?: AbortSignal;
}

export interface ReadAllOptions {
  /** First position to read, inclusive; default 1. */
  fromPosition?: bigint;
  /** Last position to read, inclusive; default the head. */
  toPosition?: bigint;
  signal?: AbortSignal;
}

export interface SubscribeAllOptions {
  fromPosition?: bigint;
  /** Ends the subscription: the iteration finishes normally. */
  signal: AbortSignal;
}

export interface ChainHead {
  position: bigint;
  hash: string;
}

/** The audit record's port; every adapter passes `eventStoreContract` from "@agentgate/eventstore/testing". */
export interface EventStore {
  /**
   * Appends atomically. Event ids already stored with the same content are skipped; when every event of the batch
   * is already stored the call succeeds with the original result and the expected revision is not checked (a
   * retried append). The same id with different content is refused (EventIdConflictError). A failed expectation
   * throws WrongExpectedRevisionError.
   */
  append(stream: string, events: EventToAppend[], options?: AppendOptions): Promise<AppendResult>;
  readStream(stream: string, options?: ReadStreamOptions): AsyncIterable<RecordedEvent>;
  readAll(options?: ReadAllOptions): AsyncIterable<RecordedEvent>;
  /** Catches up from `fromPosition` (default 1), then follows new events live until the signal aborts. */
  subscribeAll(options: SubscribeAllOptions): AsyncIterable<RecordedEvent>;
  head(): Promise<ChainHead | undefined>;
  close(): Promise<void>;
}

/** Streams starting with "$" belong to the store; producers cannot append to them. */
export const RESERVED_STREAM_PREFIX = "$";
/** Where the store appends its signed checkpoints. */
export const CHECKPOINT_STREAM = "$checkpoints";
