import { escapeLiteral, type PoolClient, type QueryResult } from "pg";
import type { StoredEvent } from "../append-plan.ts";
import type { LogHead } from "../chain.ts";
import type { CheckpointState } from "../checkpoint-plan.ts";
import { CHECKPOINT_STREAM } from "../store.ts";
import type { StoreNames } from "./names.ts";
import { EVENT_COLUMNS, type EventRow, toRecordedEvent } from "./rows.ts";

/** The log as an append transaction sees it once it holds the lock. */
export interface LockedLog extends CheckpointState {
  head: LogHead | undefined;
  /** Last revision of each asked-about stream that exists. */
  revisions: Map<string, bigint>;
  /** Of the event ids asked about, those already stored. */
  stored: Map<string, StoredEvent>;
}

/**
 * Opens the append transaction, takes the schema's advisory lock, and reads the head, the last checkpoint, the
 * streams' revisions and the already-stored ids, in one round trip: a multi-statement simple query, in which every
 * statement after the lock gets a snapshot taken after the lock was granted (READ COMMITTED). The simple protocol
 * has no parameters, so stream names and (validated) event ids are inlined as escaped literals; event data never is.
 */
export async function beginAndLock(
  client: PoolClient,
  names: StoreNames,
  streams: readonly string[],
  eventIds: readonly string[],
): Promise<LockedLog> {
  const { events } = names;
  const list = (values: readonly string[]) => values.map((value) => escapeLiteral(value)).join(",");
  const statements = [
    "BEGIN",
    `SELECT pg_advisory_xact_lock(${names.lockKey})`,
    HEAD_SQL(events),
    streams.length === 0
      ? "SELECT NULL AS stream, NULL AS revision WHERE false"
      : `SELECT stream, max(revision) AS revision FROM ${events} WHERE stream IN (${list(streams)}) GROUP BY stream`,
    eventIds.length === 0
      ? "SELECT NULL WHERE false"
      : `SELECT ${EVENT_COLUMNS} FROM ${events} WHERE event_id IN (${list(eventIds)})`,
  ];
  const results = (await client.query(statements.join(";\n"))) as unknown as QueryResult[];
  const head = results[2]!.rows[0] as HeadRow;
  const revisions = results[3]!.rows as { stream: string; revision: string }[];
  const stored = results[4]!.rows as EventRow[];
  return {
    ...toState(head),
    revisions: new Map(revisions.map((row) => [row.stream, BigInt(row.revision)])),
    stored: new Map(stored.map((row) => [row.event_id, toRecordedEvent(row)])),
  };
}

const HEAD_SQL = (events: string) => `
SELECT h.position, h.hash, h.recorded_at, clock_timestamp() AS now,
       c.position AS checkpoint_position, c.revision AS checkpoint_revision, c.recorded_at AS checkpoint_recorded_at
FROM (SELECT 1) AS one
LEFT JOIN LATERAL (SELECT position, hash, recorded_at FROM ${events} ORDER BY position DESC LIMIT 1) AS h ON true
LEFT JOIN LATERAL (
  SELECT position, revision, recorded_at FROM ${events}
  WHERE stream = ${escapeLiteral(CHECKPOINT_STREAM)} ORDER BY revision DESC LIMIT 1
) AS c ON true`;

interface HeadRow {
  position: string | null;
  hash: string | null;
  recorded_at: Date | null;
  now: Date;
  checkpoint_position: string | null;
  checkpoint_revision: string | null;
  checkpoint_recorded_at: Date | null;
}

function toState(row: HeadRow): CheckpointState {
  return {
    head:
      row.position === null
        ? undefined
        : { position: BigInt(row.position), hash: row.hash!, recordedAt: row.recorded_at! },
    lastCheckpoint:
      row.checkpoint_position === null
        ? undefined
        : {
            position: BigInt(row.checkpoint_position),
            revision: BigInt(row.checkpoint_revision!),
            recordedAt: row.checkpoint_recorded_at!,
          },
    now: row.now,
  };
}
