import {
  DiscardPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";
import { BusError } from "./errors.ts";

/** The JetStream stream every audit event goes through (write-ahead: the proxy waits for its ack). */
export const AUDIT_STREAM = "AGENTGATE_AUDIT";
/** Every subject of the audit stream starts with this. */
export const AUDIT_SUBJECT_PREFIX = "agentgate.audit";
/** The audit stream's subjects. */
export const AUDIT_SUBJECTS = `${AUDIT_SUBJECT_PREFIX}.>`;
/** Subject of events that belong to no session (PolicyRevisionActivated). */
export const POLICY_SUBJECT = `${AUDIT_SUBJECT_PREFIX}.policy`;
/** NATS header naming the protobuf full type name of the message's data, e.g. "agentgate.v1.StatementReceived". */
export const TYPE_HEADER = "Agentgate-Type";
/** JetStream de-duplicates publishes with the same Nats-Msg-Id (the event's meta.event_id) within this window. */
export const DUPLICATE_WINDOW_MS = 2 * 60_000;

const SESSION_SUBJECT_PREFIX = `${AUDIT_SUBJECT_PREFIX}.session.`;
const WORKER_SUBJECT_PREFIX = `${AUDIT_SUBJECT_PREFIX}.worker.`;
// A NATS subject token: no separator, wildcard or whitespace; bounded so subjects stay small.
const SUBJECT_TOKEN = /^[^.*>\s]{1,128}$/;

/** The subject an event of session `sessionId` is published on: agentgate.audit.session.<sessionId>. */
export function auditSubject(sessionId: string): string {
  if (typeof sessionId !== "string" || !SUBJECT_TOKEN.test(sessionId)) {
    throw new BusError(
      "invalid_subject",
      `a session id must be 1-128 characters without ".", "*", ">" or whitespace, got ${JSON.stringify(sessionId)}`,
    );
  }
  return `${SESSION_SUBJECT_PREFIX}${sessionId}`;
}

/**
 * The subject a worker's own events (WorkerHeartbeat) go on: agentgate.audit.worker.<token>, the token being the
 * worker id with the characters a subject token cannot hold ("." "*" ">" and whitespace) as "_", at most 128 of them
 * (a host name's dots, say). Two ids that differ only there share a subject; the events still name their worker.
 */
export function workerSubject(workerId: string): string {
  if (typeof workerId !== "string" || workerId === "") {
    throw new BusError("invalid_subject", "a worker id must not be empty");
  }
  return `${WORKER_SUBJECT_PREFIX}${workerToken(workerId)}`;
}

/** The subject token for `workerId` (see workerSubject). */
export function workerToken(workerId: string): string {
  return workerId.replace(/[.*>\s]/g, "_").slice(0, 128);
}

/** The worker token in a worker subject, or undefined when the subject is not one. */
export function workerTokenOfSubject(subject: string): string | undefined {
  if (!subject.startsWith(WORKER_SUBJECT_PREFIX)) return undefined;
  const id = subject.slice(WORKER_SUBJECT_PREFIX.length);
  return SUBJECT_TOKEN.test(id) ? id : undefined;
}

/** The session id in a session subject, or undefined when the subject is not one. */
export function sessionIdOfSubject(subject: string): string | undefined {
  if (!subject.startsWith(SESSION_SUBJECT_PREFIX)) return undefined;
  const id = subject.slice(SESSION_SUBJECT_PREFIX.length);
  return SUBJECT_TOKEN.test(id) ? id : undefined;
}

/**
 * The event store stream an audit subject's events are appended to: `session-<id>` for a session subject,
 * `worker-<id>` for a worker subject, `policy` for POLICY_SUBJECT, undefined for anything else.
 */
export function storeStreamOfSubject(subject: string): string | undefined {
  if (subject === POLICY_SUBJECT) return "policy";
  const sessionId = sessionIdOfSubject(subject);
  if (sessionId !== undefined) return `session-${sessionId}`;
  const token = workerTokenOfSubject(subject);
  return token === undefined ? undefined : `worker-${token}`;
}

export interface AuditStreamOptions {
  /** Copies kept by a JetStream cluster (R3 in production); 1 for a single server. */
  replicas: number;
  /** Messages older than this are removed (the ingester has long stored them); default: kept without age limit. */
  maxAgeMs?: number;
}

/**
 * Creates the audit stream, or checks that the existing one keeps the contract: file storage, limits retention, the
 * audit subjects, messages that cannot be deleted or purged through the API, a two-minute duplicate window, the given
 * replicas (and max age, when given). A stream that differs is never changed silently: BusError "stream_mismatch".
 */
export async function ensureAuditStream(jsm: JetStreamManager, options: AuditStreamOptions): Promise<StreamInfo> {
  const wanted = auditStreamConfig(options);
  let info: StreamInfo;
  try {
    info = await jsm.streams.info(AUDIT_STREAM);
  } catch (error) {
    if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamNotFound)) throw error;
    try {
      return await jsm.streams.add(wanted);
    } catch (addError) {
      // Another process created it meanwhile: check theirs like any existing stream.
      info = await jsm.streams.info(AUDIT_STREAM).catch(() => {
        throw addError;
      });
    }
  }
  const differences = streamDifferences(info.config, wanted, options.maxAgeMs !== undefined);
  if (differences.length > 0) {
    throw new BusError("stream_mismatch", `stream ${AUDIT_STREAM} exists with ${differences.join(", ")}`);
  }
  return info;
}

function auditStreamConfig(options: AuditStreamOptions): Partial<StreamConfig> & { name: string } {
  const { replicas, maxAgeMs } = options;
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) {
    throw new RangeError(`replicas must be an integer from 1 to 5, got ${replicas}`);
  }
  if (maxAgeMs !== undefined && !(Number.isSafeInteger(maxAgeMs) && maxAgeMs > DUPLICATE_WINDOW_MS)) {
    throw new RangeError(`maxAgeMs must be an integer longer than the duplicate window, got ${maxAgeMs}`);
  }
  return {
    name: AUDIT_STREAM,
    description: "agentgate audit events (protobuf), write-ahead of every statement",
    subjects: [AUDIT_SUBJECTS],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    discard: DiscardPolicy.Old,
    num_replicas: replicas,
    max_age: nanos(maxAgeMs ?? 0),
    duplicate_window: nanos(DUPLICATE_WINDOW_MS),
    deny_delete: true,
    deny_purge: true,
  };
}

function streamDifferences(actual: StreamConfig, wanted: Partial<StreamConfig>, checkMaxAge: boolean): string[] {
  const differences: string[] = [];
  const differs = (key: keyof StreamConfig, shown: (value: unknown) => string = String) => {
    if (actual[key] !== wanted[key]) differences.push(`${key} ${shown(actual[key])} (wanted ${shown(wanted[key])})`);
  };
  if (!actual.subjects.includes(AUDIT_SUBJECTS)) {
    differences.push(`subjects ${actual.subjects.join(" ")} (wanted ${AUDIT_SUBJECTS})`);
  }
  differs("storage");
  differs("retention");
  differs("num_replicas");
  differs("duplicate_window", (ns) => `${Number(ns) / 1e9}s`);
  differs("deny_delete");
  differs("deny_purge");
  if (checkMaxAge) differs("max_age", (ns) => `${Number(ns) / 1e9}s`);
  return differences;
}
