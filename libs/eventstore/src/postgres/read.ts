import type { Pool } from "pg";
import type { ReadAllOptions, ReadStreamOptions, RecordedEvent } from "../store.ts";
import type { StoreNames } from "./names.ts";
import { EVENT_COLUMNS, type EventRow, toRecordedEvent } from "./rows.ts";
import { storageError } from "./storage-error.ts";

// Rows per round trip: up to MAX_PAGE_ROWS, fewer when events are large so that a page holds about PAGE_BYTES.
const MAX_PAGE_ROWS = 256;
const PAGE_BYTES = 8 * 1024 * 1024;

/** Reads one stream in revision order, a page at a time. */
export function readStream(
  pool: Pool,
  names: StoreNames,
  stream: string,
  options: ReadStreamOptions = {},
): AsyncGenerator<RecordedEvent> {
  const sql = `SELECT ${EVENT_COLUMNS} FROM ${names.events}
               WHERE stream = $1 AND revision >= $2 ORDER BY revision LIMIT $3`;
  return paged(
    options.fromRevision ?? 0n,
    (event) => event.revision,
    options.signal,
    async (next, limit) => query(pool, sql, [stream, next, limit], `reading stream ${stream}`),
  );
}

/** Reads the global log in position order, a page at a time. */
export function readAll(pool: Pool, names: StoreNames, options: ReadAllOptions = {}): AsyncGenerator<RecordedEvent> {
  const sql = `SELECT ${EVENT_COLUMNS} FROM ${names.events}
               WHERE position >= $1 AND ($2::bigint IS NULL OR position <= $2) ORDER BY position LIMIT $3`;
  const to = options.toPosition ?? null;
  return paged(
    options.fromPosition ?? 1n,
    (event) => event.position,
    options.signal,
    async (next, limit) => query(pool, sql, [next, to, limit], "reading the log"),
  );
}

async function* paged(
  from: bigint,
  keyOf: (event: RecordedEvent) => bigint,
  signal: AbortSignal | undefined,
  fetch: (next: bigint, limit: number) => Promise<RecordedEvent[]>,
): AsyncGenerator<RecordedEvent> {
  let next = from;
  let limit = MAX_PAGE_ROWS;
  for (;;) {
    signal?.throwIfAborted();
    const page = await fetch(next, limit);
    let bytes = 0;
    for (const event of page) {
      yield event;
      next = keyOf(event) + 1n;
      bytes += event.data.byteLength;
    }
    if (page.length < limit) return;
    const average = Math.max(1, bytes / page.length);
    limit = Math.min(MAX_PAGE_ROWS, Math.max(1, Math.floor(PAGE_BYTES / average)));
  }
}

async function query(pool: Pool, sql: string, params: unknown[], doing: string): Promise<RecordedEvent[]> {
  try {
    return (await pool.query<EventRow>(sql, params)).rows.map(toRecordedEvent);
  } catch (error) {
    throw storageError(doing, error);
  }
}
