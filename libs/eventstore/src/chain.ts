import { createHash } from "node:crypto";

/**
 * The hash chain over the global log. Format version 1, what an offline verifier recomputes:
 *
 *   hash(n) = SHA-256( prevHash(n) ‖ record(n) )
 *   prevHash(1) = 32 zero bytes; prevHash(n) = hash(n-1); both as raw 32 bytes (hex only in storage and JSON)
 *
 *   record = u8   0x01                          format version
 *            u64  position                      big-endian, like every integer below
 *            u32  byte length ‖ stream          UTF-8
 *            u64  revision
 *            16   event id                      the UUID's 16 bytes
 *            u32  byte length ‖ type            UTF-8
 *            i64  occurredAt                    milliseconds since 1970-01-01T00:00:00Z
 *            i64  recordedAt                    milliseconds since 1970-01-01T00:00:00Z
 *            u32  byte length ‖ data            the event's bytes as stored
 */
export const CHAIN_FORMAT_VERSION = 1;

/** prevHash of position 1. */
export const GENESIS_HASH = "0".repeat(64);

/** The fields the chain covers: everything in a RecordedEvent except the two hashes. */
export interface ChainedFields {
  position: bigint;
  stream: string;
  revision: bigint;
  eventId: string;
  type: string;
  occurredAt: Date;
  recordedAt: Date;
  data: Uint8Array;
}

const HASH_PATTERN = /^[0-9a-f]{64}$/;
const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True for a lowercase hex SHA-256. */
export function isHash(value: unknown): value is string {
  return typeof value === "string" && HASH_PATTERN.test(value);
}

/** True for a UUID in its hyphenated form (any case). */
export function isUuid(value: unknown): value is string {
  return typeof value === "string" && UUID_PATTERN.test(value);
}

/** hash(n) from prevHash(n) and the event's fields. */
export function chainHash(prevHash: string, fields: ChainedFields): string {
  if (!isHash(prevHash)) throw new TypeError(`prevHash must be 64 lowercase hex digits, got ${prevHash}`);
  return createHash("sha256")
    .update(Buffer.from(prevHash, "hex"))
    .update(recordHeader(fields))
    .update(fields.data)
    .digest("hex");
}

/** record(n) without its trailing data bytes, which chainHash feeds to the hash without copying. */
export function recordHeader(fields: ChainedFields): Buffer {
  const stream = Buffer.from(fields.stream, "utf8");
  const type = Buffer.from(fields.type, "utf8");
  const header = Buffer.alloc(1 + 8 + 4 + stream.length + 8 + 16 + 4 + type.length + 8 + 8 + 4);
  let at = header.writeUInt8(CHAIN_FORMAT_VERSION, 0);
  at = header.writeBigUInt64BE(fields.position, at);
  at = header.writeUInt32BE(stream.length, at);
  at += stream.copy(header, at);
  at = header.writeBigUInt64BE(fields.revision, at);
  at += uuidBytes(fields.eventId).copy(header, at);
  at = header.writeUInt32BE(type.length, at);
  at += type.copy(header, at);
  at = header.writeBigInt64BE(epochMillis(fields.occurredAt), at);
  at = header.writeBigInt64BE(epochMillis(fields.recordedAt), at);
  header.writeUInt32BE(fields.data.byteLength, at);
  return header;
}

function uuidBytes(eventId: string): Buffer {
  if (!isUuid(eventId)) throw new TypeError(`event id must be a UUID, got ${eventId}`);
  return Buffer.from(eventId.replaceAll("-", ""), "hex");
}

function epochMillis(date: Date): bigint {
  const millis = date.getTime();
  if (!Number.isSafeInteger(millis)) throw new TypeError("dates in the chain must be valid");
  return BigInt(millis);
}

/** The log's last event as the append path needs it. */
export interface LogHead {
  position: bigint;
  hash: string;
  recordedAt: Date;
}

/** An event placed in the log, before it is hashed. */
export type PlacedEvent = Omit<ChainedFields, "position" | "recordedAt">;

/**
 * Chains `events` after `head`: consecutive positions, recordedAt = max(now, head.recordedAt) truncated to
 * milliseconds (so time ranges of the log are contiguous), each prevHash the hash before it.
 */
export function extendChain(head: LogHead | undefined, events: readonly PlacedEvent[], now: Date) {
  const recordedAt = new Date(Math.max(Math.trunc(now.getTime()), head?.recordedAt.getTime() ?? 0));
  let position = head?.position ?? 0n;
  let prevHash = head?.hash ?? GENESIS_HASH;
  return events.map((event) => {
    position += 1n;
    const fields = { ...event, position, recordedAt };
    const hash = chainHash(prevHash, fields);
    const recorded = { ...fields, prevHash, hash };
    prevHash = hash;
    return recorded;
  });
}
