import {
  EventBatchSchema,
  type EventMeta,
  PolicyRevisionActivatedSchema,
  SessionEndedSchema,
  SessionStartedSchema,
  SignInRefusedSchema,
  StatementCompletedSchema,
  StatementReceivedSchema,
  WorkerHeartbeatSchema,
} from "@agentgate/events";
import { type DescMessage, fromBinary, type MessageShape } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { BusError } from "./errors.ts";

/** Every event type the audit stream carries, by protobuf full type name (the Agentgate-Type header). */
export const EVENT_TYPES = {
  "agentgate.v1.SessionStarted": SessionStartedSchema,
  "agentgate.v1.SessionEnded": SessionEndedSchema,
  "agentgate.v1.SignInRefused": SignInRefusedSchema,
  "agentgate.v1.StatementReceived": StatementReceivedSchema,
  "agentgate.v1.StatementCompleted": StatementCompletedSchema,
  "agentgate.v1.PolicyRevisionActivated": PolicyRevisionActivatedSchema,
  "agentgate.v1.WorkerHeartbeat": WorkerHeartbeatSchema,
} as const satisfies Record<string, DescMessage>;

export type AuditEventType = keyof typeof EVENT_TYPES;
/** A decoded audit event; `$typeName` tells which. */
export type AuditEvent = { [K in AuditEventType]: MessageShape<(typeof EVENT_TYPES)[K]> }[AuditEventType];

export function isAuditEventType(typeName: string): typeName is AuditEventType {
  return Object.hasOwn(EVENT_TYPES, typeName);
}

/**
 * Decodes an event's bytes as the type its header names. Throws BusError "unknown_type" for a type not in
 * EVENT_TYPES and "malformed_event" for bytes that do not parse or an event without meta.
 */
export function decodeEvent(typeName: string, bytes: Uint8Array): AuditEvent {
  if (!isAuditEventType(typeName)) {
    throw new BusError("unknown_type", `unknown event type ${JSON.stringify(typeName.slice(0, 200))}`);
  }
  let event: AuditEvent;
  try {
    event = fromBinary(EVENT_TYPES[typeName] as DescMessage, bytes) as AuditEvent;
  } catch (error) {
    throw new BusError("malformed_event", `${typeName}: ${(error as Error).message}`, { cause: error });
  }
  if (event.meta === undefined) throw new BusError("malformed_event", `${typeName} without meta`);
  return event;
}

/** The meta every decoded event carries (decodeEvent refuses events without one). */
export function metaOf(event: AuditEvent): EventMeta {
  return event.meta as EventMeta;
}

/** The Agentgate-Type of a bus message that carries several events of one session (an EventBatch). */
export const BATCH_TYPE = "agentgate.v1.EventBatch";

/** One event as it travels on the bus: its type name (header or batch entry) and its bytes. */
export interface BusEvent {
  typeName: string;
  data: Uint8Array;
}

/**
 * The events one bus message carries, in order: the message itself, or the entries of an EventBatch. Throws BusError
 * "malformed_event" for a batch that does not parse, is empty, or nests a batch; entries are not decoded here.
 */
export function eventsOfMessage(typeName: string, data: Uint8Array): BusEvent[] {
  if (typeName !== BATCH_TYPE) return [{ typeName, data }];
  let batch: ReturnType<typeof fromBinary<typeof EventBatchSchema>>;
  try {
    batch = fromBinary(EventBatchSchema, data);
  } catch (error) {
    throw new BusError("malformed_event", `${BATCH_TYPE}: ${(error as Error).message}`, { cause: error });
  }
  if (batch.events.length === 0) throw new BusError("malformed_event", `${BATCH_TYPE} without events`);
  return batch.events.map((e) => {
    if (e.type === BATCH_TYPE) throw new BusError("malformed_event", `${BATCH_TYPE} inside ${BATCH_TYPE}`);
    return { typeName: e.type, data: e.data };
  });
}

/**
 * The bus message for a session's events: the event itself when there is one, otherwise an EventBatch. The batch is
 * written with the protobuf library's wire writer rather than built as a message and encoded: the entries' bytes
 * are copied once instead of being walked field by field (the contract test checks it against toBinary).
 */
export function messageOfEvents(events: readonly BusEvent[]): BusEvent {
  if (events.length === 0) throw new RangeError("a bus message needs at least one event");
  if (events.length === 1) return events[0]!;
  const writer = new BinaryWriter();
  for (const e of events) {
    // BatchedEvent { string type = 1; bytes data = 2; } as EventBatch.events (field 1).
    writer.tag(1, WireType.LengthDelimited).fork();
    writer.tag(1, WireType.LengthDelimited).string(e.typeName);
    writer.tag(2, WireType.LengthDelimited).bytes(e.data);
    writer.join();
  }
  return { typeName: BATCH_TYPE, data: writer.finish() };
}
