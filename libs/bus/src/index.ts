export {
  AUDIT_STREAM,
  AUDIT_SUBJECT_PREFIX,
  AUDIT_SUBJECTS,
  type AuditStreamOptions,
  auditSubject,
  DUPLICATE_WINDOW_MS,
  ensureAuditStream,
  POLICY_SUBJECT,
  sessionIdOfSubject,
  storeStreamOfSubject,
  TYPE_HEADER,
  workerSubject,
  workerToken,
  workerTokenOfSubject,
} from "./contract.ts";
export { BusError, type BusErrorCode } from "./errors.ts";
export {
  type AuditEvent,
  type AuditEventType,
  BATCH_TYPE,
  type BusEvent,
  decodeEvent,
  EVENT_TYPES,
  eventsOfMessage,
  isAuditEventType,
  messageOfEvents,
  metaOf,
} from "./event-types.ts";
export {
  type AuditPublisher,
  type AuditPublisherOptions,
  createAuditPublisher,
  type OutgoingEvent,
} from "./publisher.ts";
