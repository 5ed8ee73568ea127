import {
  type EventMeta,
  PolicyRevisionActivatedSchema,
  SessionEndedSchema,
  SessionStartedSchema,
  SignInRefusedSchema,
  StatementCompletedSchema,
  StatementReceivedSchema,
} from "@agentgate/events";
import { type DescMessage, fromBinary, type MessageShape } from "@bufbuild/protobuf";
import { BusError } from "./errors.ts";

/** Every event type the audit stream carries, by protobuf full type name (the Agentgate-Type header). */
export const EVENT_TYPES = {
  "agentgate.v1.SessionStarted": SessionStartedSchema,
  "agentgate.v1.SessionEnded": SessionEndedSchema,
  "agentgate.v1.SignInRefused": SignInRefusedSchema,
  "agentgate.v1.StatementReceived": StatementReceivedSchema,
  "agentgate.v1.StatementCompleted": StatementCompletedSchema,
  "agentgate.v1.PolicyRevisionActivated": PolicyRevisionActivatedSchema,
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
