import type { RecordedEvent } from "../store.ts";

export const EVENT_COLUMNS =
  "position, stream, revision, event_id, type, data, occurred_at, recorded_at, prev_hash, hash";

/** An events row as node-postgres returns it (int8 as text). */
export interface EventRow {
  position: string;
  stream: string;
  revision: string;
  event_id: string;
  type: string;
  data: Buffer;
  occurred_at: Date;
  recorded_at: Date;
  prev_hash: string;
  hash: string;
}

export function toRecordedEvent(row: EventRow): RecordedEvent {
  return {
    position: BigInt(row.position),
    stream: row.stream,
    revision: BigInt(row.revision),
    eventId: row.event_id,
    type: row.type,
    data: new Uint8Array(row.data.buffer, row.data.byteOffset, row.data.byteLength),
    occurredAt: row.occurred_at,
    recordedAt: row.recorded_at,
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}
