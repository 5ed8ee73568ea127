import { extendChain, type LogHead } from "./chain.ts";
import { type CheckpointPolicy, planCheckpoint } from "./checkpoint-plan.ts";
import { EventIdConflictError, WrongExpectedRevisionError } from "./errors.ts";
import type { AppendResult, EventToAppend, ExpectedRevision, RecordedEvent } from "./store.ts";

/** What an adapter reads under its append lock before planning. */
export interface LogState {
  head: LogHead | undefined;
  /** Last revision of the stream being appended to. */
  streamRevision: bigint | undefined;
  lastCheckpoint: { position: bigint; revision: bigint; recordedAt: Date } | undefined;
  /** The store's clock, read under the lock. */
  now: Date;
}

/** An event already in the log, as far as idempotency needs to compare. */
export type StoredEvent = Pick<
  RecordedEvent,
  "eventId" | "stream" | "revision" | "position" | "type" | "data" | "occurredAt"
>;

export interface AppendRequest {
  stream: string;
  /** Validated: lowercase event ids. */
  events: readonly EventToAppend[];
  expectedRevision: ExpectedRevision;
  state: LogState;
  /** The batch's event ids that are already stored. */
  stored: ReadonlyMap<string, StoredEvent>;
  checkpoints?: CheckpointPolicy | undefined;
}

export interface AppendPlan {
  /** Rows to insert in position order: the new events, then a checkpoint when one is due. */
  records: RecordedEvent[];
  result: AppendResult;
}

/**
 * The append semantics every adapter shares: idempotency by event id, the expected-revision check, revisions,
 * positions and the hash chain. Throws EventIdConflictError or WrongExpectedRevisionError.
 */
export function planAppend(request: AppendRequest): AppendPlan {
  const { stream, events, expectedRevision, state, stored } = request;
  const fresh = newEvents(stream, events, stored);
  const last = events.at(-1);
  if (last !== undefined && fresh.length === 0) {
    // A retried append: answer what the first one did.
    const original = stored.get(last.eventId)!;
    return { records: [], result: { nextRevision: original.revision, position: original.position } };
  }
  checkExpectedRevision(stream, expectedRevision, state.streamRevision);
  if (fresh.length === 0) {
    return { records: [], result: { nextRevision: state.streamRevision ?? -1n, position: state.head?.position ?? 0n } };
  }

  const firstRevision = (state.streamRevision ?? -1n) + 1n;
  const placed = fresh.map((event, index) => ({ ...event, stream, revision: firstRevision + BigInt(index) }));
  const records: RecordedEvent[] = extendChain(state.head, placed, state.now);
  const newHead = records.at(-1)!;
  const result = { nextRevision: newHead.revision, position: newHead.position };
  const checkpoint = request.checkpoints && planCheckpoint({ ...state, head: newHead }, request.checkpoints, "events");
  if (checkpoint) records.push(checkpoint);
  return { records, result };
}

function newEvents(
  stream: string,
  events: readonly EventToAppend[],
  stored: ReadonlyMap<string, StoredEvent>,
): EventToAppend[] {
  const inBatch = new Map<string, EventToAppend>();
  const fresh: EventToAppend[] = [];
  for (const event of events) {
    const earlier = stored.get(event.eventId);
    const sameBatch = inBatch.get(event.eventId);
    if (earlier !== undefined) {
      requireSameContent(event, earlier, earlier.stream === stream ? undefined : earlier.stream);
    } else if (sameBatch !== undefined) {
      requireSameContent(event, sameBatch, undefined);
    } else {
      inBatch.set(event.eventId, event);
      fresh.push(event);
    }
  }
  return fresh;
}

function requireSameContent(event: EventToAppend, stored: EventToAppend, otherStream: string | undefined): void {
  const difference =
    otherStream !== undefined
      ? `stream (${JSON.stringify(otherStream)})`
      : stored.type !== event.type
        ? "type"
        : stored.occurredAt.getTime() !== event.occurredAt.getTime()
          ? "occurredAt"
          : !sameBytes(stored.data, event.data)
            ? "data"
            : undefined;
  if (difference !== undefined) throw new EventIdConflictError(event.eventId, difference);
}

function checkExpectedRevision(stream: string, expected: ExpectedRevision, actual: bigint | undefined): void {
  const ok =
    expected === "any" ||
    (expected === "no_stream" && actual === undefined) ||
    (expected === "exists" && actual !== undefined) ||
    (typeof expected === "bigint" && expected === actual);
  if (!ok) throw new WrongExpectedRevisionError(stream, expected, actual);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}
