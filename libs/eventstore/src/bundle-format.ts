import { isHash, isUuid } from "./chain.ts";
import type { RecordedEvent } from "./store.ts";

/**
 * An export bundle is a directory with two files:
 *  - events.jsonl: one line per event in position order, each exactly encodeLine(event) + "\n";
 *  - manifest.json: BundleManifest.
 * Lines are canonical (fixed key order, no whitespace, standard padded base64), so a verifier can tell any edited
 * byte from the line it is in.
 */
export const BUNDLE_FORMAT = "agentgate.eventstore.bundle.v1";
export const EVENTS_FILE = "events.jsonl";
export const MANIFEST_FILE = "manifest.json";

export interface BundleCheckpoint {
  /** Position of the checkpoint event. */
  eventPosition: number;
  /** The signed statement: the log had head `hash` at `position`. */
  position: number;
  hash: string;
  signedAt: string;
  keyId: string;
  signature: string;
}

export interface BundleManifest {
  format: typeof BUNDLE_FORMAT;
  exportedAt: string;
  /** What was asked (recordedAt bounds, since inclusive, until exclusive) and the positions that came out. */
  range: { since: string | null; until: string | null; fromPosition: number | null; toPosition: number | null };
  count: number;
  /** prevHash of the first event: where verification of a partial export starts (64 zeros from position 1). */
  prevHash: string | null;
  head: { position: number; hash: string } | null;
  checkpoints: BundleCheckpoint[];
  /** Keys that signed the checkpoints, as given to the exporter. */
  publicKeys: { keyId: string; pem: string }[];
  /** Lowercase hex SHA-256 of events.jsonl. */
  eventsSha256: string;
}

export function encodeLine(event: RecordedEvent): string {
  return JSON.stringify({
    position: toSafeNumber(event.position),
    stream: event.stream,
    revision: toSafeNumber(event.revision),
    eventId: event.eventId,
    type: event.type,
    occurredAt: event.occurredAt.toISOString(),
    recordedAt: event.recordedAt.toISOString(),
    data: Buffer.from(event.data.buffer, event.data.byteOffset, event.data.byteLength).toString("base64"),
    prevHash: event.prevHash,
    hash: event.hash,
  });
}

/** Parses one line (without its "\n"); throws a TypeError saying what is wrong, including non-canonical form. */
export function decodeLine(line: string): RecordedEvent {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    throw new TypeError("not valid JSON");
  }
  const r = (typeof parsed === "object" && parsed !== null ? parsed : {}) as Record<string, unknown>;
  const integer = (key: string, min: number) => {
    const value = r[key];
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) throw new TypeError(`bad ${key}`);
    return BigInt(value);
  };
  const text = (key: string) => {
    if (typeof r[key] !== "string") throw new TypeError(`bad ${key}`);
    return r[key] as string;
  };
  const date = (key: string) => {
    const value = new Date(text(key));
    if (Number.isNaN(value.getTime())) throw new TypeError(`bad ${key}`);
    return value;
  };
  const event: RecordedEvent = {
    position: integer("position", 1),
    stream: text("stream"),
    revision: integer("revision", 0),
    eventId: text("eventId"),
    type: text("type"),
    occurredAt: date("occurredAt"),
    recordedAt: date("recordedAt"),
    data: new Uint8Array(Buffer.from(text("data"), "base64")),
    prevHash: text("prevHash"),
    hash: text("hash"),
  };
  if (!isUuid(event.eventId)) throw new TypeError("bad eventId");
  if (!isHash(event.prevHash) || !isHash(event.hash)) throw new TypeError("bad prevHash or hash");
  if (encodeLine(event) !== line) throw new TypeError("not in canonical form");
  return event;
}

function toSafeNumber(value: bigint): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`${value} does not fit a JSON number exactly`);
  return Number(value);
}
