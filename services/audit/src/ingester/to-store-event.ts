import {
  BusError,
  decodeEvent,
  eventsOfMessage,
  metaOf,
  sessionIdOfSubject,
  storeStreamOfSubject,
  workerToken,
  workerTokenOfSubject,
} from "@agentgate/bus";
import type { EventToAppend } from "@agentgate/eventstore";
import { timestampDate } from "@bufbuild/protobuf/wkt";

/** A bus message's events ready to append, or why it never can be (it is then terminated, not retried). */
export type StoreEventsOrPoison = { ok: true; stream: string; events: EventToAppend[] } | { ok: false; reason: string };

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Maps a message of the audit stream to the event store: stream from the subject, type from the header (or, for an
 * EventBatch, from each entry), event id and occurredAt from each event's meta, data unchanged (the chain covers the
 * bytes the proxy published). A message is stored whole or not at all: one bad entry makes all of it poison.
 */
export function toStoreEvents(subject: string, typeName: string | undefined, data: Uint8Array): StoreEventsOrPoison {
  const stream = storeStreamOfSubject(subject);
  if (stream === undefined) return { ok: false, reason: "the subject names no session, worker or policy" };
  if (typeName === undefined || typeName === "") return { ok: false, reason: "no Agentgate-Type header" };
  let entries: ReturnType<typeof eventsOfMessage>;
  try {
    entries = eventsOfMessage(typeName, data);
  } catch (error) {
    if (error instanceof BusError) return { ok: false, reason: error.message };
    throw error;
  }
  const events: EventToAppend[] = [];
  for (const [i, entry] of entries.entries()) {
    const mapped = toStoreEvent(subject, entry.typeName, entry.data);
    if (!mapped.ok) return entries.length === 1 ? mapped : { ok: false, reason: `batch entry ${i}: ${mapped.reason}` };
    events.push(mapped.event);
  }
  return { ok: true, stream, events };
}

function toStoreEvent(
  subject: string,
  typeName: string,
  data: Uint8Array,
): { ok: true; event: EventToAppend } | { ok: false; reason: string } {
  let meta: ReturnType<typeof metaOf>;
  try {
    meta = metaOf(decodeEvent(typeName, data));
  } catch (error) {
    if (error instanceof BusError) return { ok: false, reason: error.message };
    throw error;
  }
  if (!UUID.test(meta.eventId)) return { ok: false, reason: "meta.event_id is not a UUID" };
  if (meta.occurredAt === undefined) return { ok: false, reason: "no meta.occurred_at" };
  const sessionId = sessionIdOfSubject(subject);
  if (sessionId !== undefined && meta.sessionId !== sessionId) {
    return { ok: false, reason: "meta.session_id is not the subject's session" };
  }
  const worker = workerTokenOfSubject(subject);
  if (worker !== undefined) {
    if (typeName !== "agentgate.v1.WorkerHeartbeat") return { ok: false, reason: `${typeName} on a worker subject` };
    if (meta.workerId === "" || workerToken(meta.workerId) !== worker) {
      return { ok: false, reason: "meta.worker_id is not the subject's worker" };
    }
  }
  const occurredAt = timestampDate(meta.occurredAt);
  if (Number.isNaN(occurredAt.getTime())) return { ok: false, reason: "meta.occurred_at is out of range" };
  // A copy: the client may reuse the buffer its messages are views of.
  return { ok: true, event: { eventId: meta.eventId, type: typeName, data: data.slice(), occurredAt } };
}
