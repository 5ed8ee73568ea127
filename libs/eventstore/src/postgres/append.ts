import type { Pool, PoolClient } from "pg";
import { type CheckpointPolicy, type CheckpointTrigger, planCheckpoint } from "../checkpoint-plan.ts";
import type { RecordedEvent } from "../store.ts";
import { beginAndLock, type LockedLog } from "./log-state.ts";
import type { StoreNames } from "./names.ts";
import { EVENT_COLUMNS } from "./rows.ts";
import { storageError } from "./storage-error.ts";

/**
 * Runs `work` in an append transaction: BEGIN, the schema's advisory lock and the log state in one round trip, then
 * `work` inserts, then COMMIT. Holding the lock until COMMIT makes positions gapless and the chain linear, and
 * because a transaction becomes visible before it releases its locks, a reader never sees position n+1 without n.
 */
export async function inAppendTransaction<T>(
  pool: Pool,
  names: StoreNames,
  lookup: { streams: readonly string[]; eventIds: readonly string[] },
  doing: string,
  work: (client: PoolClient, log: LockedLog) => Promise<T>,
): Promise<T> {
  let client: PoolClient;
  try {
    client = await pool.connect();
  } catch (error) {
    throw storageError(doing, error);
  }
  let broken: Error | undefined;
  // A connection the server drops while we hold it errors on the client object: without a listener that error
  // would be uncaught and take the process down. The query in flight fails anyway; the client is discarded.
  const onError = (error: Error) => {
    broken = error;
  };
  client.on("error", onError);
  try {
    const result = await work(client, await beginAndLock(client, names, lookup.streams, lookup.eventIds));
    await client.query("COMMIT");
    return result;
  } catch (error) {
    await client.query("ROLLBACK").catch((rollbackError: Error) => {
      broken = rollbackError;
    });
    throw storageError(doing, error);
  } finally {
    client.off("error", onError);
    client.release(broken);
  }
}

/** Appends a checkpoint when `trigger` makes one due; returns it. */
export function appendCheckpoint(
  pool: Pool,
  names: StoreNames,
  policy: CheckpointPolicy,
  trigger: CheckpointTrigger,
): Promise<RecordedEvent | undefined> {
  const lookup = { streams: [], eventIds: [] };
  return inAppendTransaction(pool, names, lookup, "appending a checkpoint", async (client, log) => {
    const checkpoint = planCheckpoint(log, policy, trigger);
    if (checkpoint !== undefined) await insertRecords(client, names, [checkpoint]);
    return checkpoint;
  });
}

/** Inserts records in position order with one statement, prepared once per connection. */
export async function insertRecords(
  client: PoolClient,
  names: StoreNames,
  records: readonly RecordedEvent[],
): Promise<void> {
  if (records.length === 0) return;
  const column = <T>(pick: (record: RecordedEvent) => T) => records.map(pick);
  await client.query({
    name: `agentgate-eventstore-insert-${names.schema}`,
    text: `INSERT INTO ${names.events} (${EVENT_COLUMNS})
           SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::uuid[], $5::text[], $6::bytea[],
                                $7::timestamptz[], $8::timestamptz[], $9::text[], $10::text[])
           ORDER BY 1`,
    values: [
      column((r) => r.position.toString()),
      column((r) => r.stream),
      column((r) => r.revision.toString()),
      column((r) => r.eventId),
      column((r) => r.type),
      column((r) => r.data),
      column((r) => r.occurredAt.toISOString()),
      column((r) => r.recordedAt.toISOString()),
      column((r) => r.prevHash),
      column((r) => r.hash),
    ],
  });
}
