import { isUuid } from "./chain.ts";
import { EventStoreError } from "./errors.ts";
import { type EventToAppend, type ExpectedRevision, RESERVED_STREAM_PREFIX } from "./store.ts";

const MAX_NAME_BYTES = 1024;

/** Checks a producer's append and returns the events with lowercase event ids (as PostgreSQL stores them). */
export function validateAppend(
  stream: string,
  events: readonly EventToAppend[],
  expectedRevision: ExpectedRevision,
  { internal = false } = {},
): EventToAppend[] {
  validateStream(stream);
  if (!internal && stream.startsWith(RESERVED_STREAM_PREFIX)) {
    throw invalid(`stream names starting with "${RESERVED_STREAM_PREFIX}" are reserved for the store: ${stream}`);
  }
  validateExpectedRevision(expectedRevision);
  if (!Array.isArray(events)) throw invalid("events must be an array");
  return events.map((event, index) => validateEvent(event, index));
}

export function validateStream(stream: string): void {
  validateName(stream, "stream");
}

function validateEvent(event: EventToAppend, index: number): EventToAppend {
  const where = `events[${index}]`;
  if (typeof event !== "object" || event === null) throw invalid(`${where} must be an object`);
  if (!isUuid(event.eventId)) throw invalid(`${where}.eventId must be a UUID, got ${String(event.eventId)}`);
  validateName(event.type, `${where}.type`);
  if (!(event.data instanceof Uint8Array)) throw invalid(`${where}.data must be a Uint8Array`);
  if (!(event.occurredAt instanceof Date) || Number.isNaN(event.occurredAt.getTime())) {
    throw invalid(`${where}.occurredAt must be a valid Date`);
  }
  return { ...event, eventId: event.eventId.toLowerCase() };
}

function validateExpectedRevision(expected: ExpectedRevision): void {
  if (typeof expected === "bigint" ? expected >= 0n : ["any", "no_stream", "exists"].includes(expected)) return;
  throw invalid(`expectedRevision must be a revision >= 0, "any", "no_stream" or "exists", got ${String(expected)}`);
}

// Names are hashed as UTF-8 and stored as PostgreSQL text: no NUL, no lone surrogates, bounded length.
function validateName(name: unknown, what: string): void {
  if (typeof name !== "string" || name === "") throw invalid(`${what} must be a non-empty string`);
  const bytes = Buffer.from(name, "utf8");
  if (bytes.length > MAX_NAME_BYTES) throw invalid(`${what} is longer than ${MAX_NAME_BYTES} bytes`);
  if (name.includes("\0") || bytes.toString("utf8") !== name) {
    throw invalid(`${what} must be well-formed text without NUL: ${JSON.stringify(name)}`);
  }
}

function invalid(message: string): EventStoreError {
  return new EventStoreError("invalid_argument", message);
}
