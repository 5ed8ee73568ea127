import {
  type EventMeta,
  type SessionEnded,
  SessionEndReason,
  type SessionStarted,
  type WorkerHeartbeat,
} from "@agentgate/events";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import type pg from "pg";
import type { ReadModelNames } from "./schema.ts";

/** What every event of a session tells about it; the first non-empty value of each field stays. */
export async function touchSession(
  client: pg.ClientBase,
  n: ReadModelNames,
  sessionId: string,
  meta: EventMeta,
  position: bigint,
  statements = 0,
): Promise<void> {
  const p = meta.principal;
  await client.query(
    `INSERT INTO ${n.sessions} AS s (session_id, principal_subject, principal_groups, principal_issuer, client_id,
                                     target, worker_id, statement_count, last_position)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     ON CONFLICT (session_id) DO UPDATE SET
       principal_subject = COALESCE(s.principal_subject, EXCLUDED.principal_subject),
       principal_groups  = CASE WHEN s.principal_subject IS NULL THEN EXCLUDED.principal_groups
                                ELSE s.principal_groups END,
       principal_issuer  = COALESCE(s.principal_issuer, EXCLUDED.principal_issuer),
       client_id         = COALESCE(s.client_id, EXCLUDED.client_id),
       target            = COALESCE(s.target, EXCLUDED.target),
       worker_id         = COALESCE(s.worker_id, EXCLUDED.worker_id),
       statement_count   = s.statement_count + EXCLUDED.statement_count,
       last_position     = EXCLUDED.last_position`,
    [
      sessionId,
      text(p?.subject),
      p?.groups ?? [],
      text(p?.issuer),
      text(p?.clientId),
      text(meta.target),
      text(meta.workerId),
      statements,
      position.toString(),
    ],
  );
}

/** SessionStarted is the authority on who, where and when. */
export async function sessionStarted(
  client: pg.ClientBase,
  n: ReadModelNames,
  sessionId: string,
  event: SessionStarted,
  occurredAt: Date,
  position: bigint,
): Promise<void> {
  const meta = event.meta!;
  await touchSession(client, n, sessionId, meta, position);
  const p = meta.principal;
  await client.query(
    `UPDATE ${n.sessions}
        SET principal_subject = $2, principal_groups = $3, principal_issuer = $4, client_id = $5, target = $6,
            worker_id = $7, client_address = $8, application_name = $9, tls = $10, started_at = $11
      WHERE session_id = $1`,
    [
      sessionId,
      text(p?.subject),
      p?.groups ?? [],
      text(p?.issuer),
      text(p?.clientId),
      text(meta.target),
      text(meta.workerId),
      text(event.clientAddress),
      text(event.applicationName),
      event.tls,
      occurredAt,
    ],
  );
}

export async function sessionEnded(
  client: pg.ClientBase,
  n: ReadModelNames,
  sessionId: string,
  event: SessionEnded,
  occurredAt: Date,
  position: bigint,
): Promise<void> {
  await touchSession(client, n, sessionId, event.meta!, position);
  await client.query(`UPDATE ${n.sessions} SET ended_at = $2, end_reason = $3, end_detail = $4 WHERE session_id = $1`, [
    sessionId,
    occurredAt,
    endReasonName(event.reason),
    text(event.detail),
  ]);
}

/** A worker's heartbeat: when it was last heard of (heartbeats may be stored out of order: the newest stays). */
export async function workerHeartbeat(
  client: pg.ClientBase,
  n: ReadModelNames,
  event: WorkerHeartbeat,
  occurredAt: Date,
): Promise<void> {
  const workerId = event.meta?.workerId ?? "";
  if (workerId === "") return;
  // The newest heartbeat is the worker's state; an older one arriving late changes nothing.
  await client.query(
    `INSERT INTO ${n.workers} AS w (worker_id, last_heartbeat, interval_ms, open_sessions, started_at)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (worker_id) DO UPDATE SET
       last_heartbeat = EXCLUDED.last_heartbeat, interval_ms = EXCLUDED.interval_ms,
       open_sessions = EXCLUDED.open_sessions, started_at = EXCLUDED.started_at
     WHERE EXCLUDED.last_heartbeat >= w.last_heartbeat`,
    [
      workerId,
      occurredAt,
      event.intervalMs,
      event.openSessions,
      event.startedAt === undefined ? null : timestampDate(event.startedAt),
    ],
  );
}

/** "client_closed" for SESSION_END_REASON_CLIENT_CLOSED. */
export function endReasonName(reason: SessionEndReason): string {
  return (SessionEndReason[reason] ?? "UNSPECIFIED").toLowerCase();
}

/** proto3 has no absent strings: an empty one is stored as NULL. */
export function text(value: string | undefined): string | null {
  return value === undefined || value === "" ? null : value;
}
