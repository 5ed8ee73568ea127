// The two events every statement produces, encoded field by field with the protobuf library's wire writer. The
// library's create() + toBinary() walk each message's descriptor by reflection: for these two events that was a
// fifth of the audited gateway's CPU per statement. The bytes are those toBinary gives (audit-encoding.test.ts
// compares them over varied events): fields in number order, proto3 defaults left out, every element of a repeated
// string written even when empty, map entries as key-value messages in insertion order.

import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import type { StatementFacts } from "./enforce/policy.ts";

const LEN = WireType.LengthDelimited;
const VARINT = WireType.Varint;

/** EventMeta's per-event fields, then the session's fields encoded once (see SessionAudit's session meta). */
export interface EventHead {
  eventId: string;
  /** occurred_at in milliseconds since the epoch. */
  occurredAtMs: number;
  sessionMeta: Uint8Array;
}

/** StatementReceived's fields after its meta (proto/agentgate/v1/audit.proto). */
export interface ReceivedFields {
  statementId: string;
  sequence: bigint;
  sql: string;
  parameters: readonly string[];
  protocol: string;
  fingerprint: string;
  statements: readonly StatementFacts[];
  effect: number;
  rule: string;
  reason: string;
  policyRevision: string;
}

/** StatementCompleted's fields after its meta. */
export interface CompletedFields {
  statementId: string;
  status: string;
  commandTag: string;
  rows: bigint;
  durationMicros: bigint;
  sqlstate: string;
  maskedCells?: Record<string, bigint>;
}

/** Field 1 of every audit event: EventMeta { event_id = 1; occurred_at = 2; then the session's fields 3-6 }. */
function writeHead(w: BinaryWriter, head: EventHead): void {
  w.tag(1, LEN).fork();
  if (head.eventId !== "") w.tag(1, LEN).string(head.eventId);
  // google.protobuf.Timestamp { int64 seconds = 1; int32 nanos = 2; }
  const seconds = Math.floor(head.occurredAtMs / 1000);
  const nanos = (head.occurredAtMs - seconds * 1000) * 1_000_000;
  w.tag(2, LEN).fork();
  if (seconds !== 0) w.tag(1, VARINT).int64(seconds);
  if (nanos !== 0) w.tag(2, VARINT).int32(nanos);
  w.join();
  w.raw(head.sessionMeta);
  w.join();
}

function string(w: BinaryWriter, field: number, value: string): void {
  if (value !== "") w.tag(field, LEN).string(value);
}

function strings(w: BinaryWriter, field: number, values: readonly string[]): void {
  for (const value of values) w.tag(field, LEN).string(value);
}

function uint64(w: BinaryWriter, field: number, value: bigint): void {
  if (value !== 0n) w.tag(field, VARINT).uint64(value);
}

export function encodeStatementReceived(head: EventHead, f: ReceivedFields): Uint8Array {
  const w = new BinaryWriter();
  writeHead(w, head);
  string(w, 2, f.statementId);
  uint64(w, 3, f.sequence);
  string(w, 4, f.sql);
  strings(w, 5, f.parameters);
  string(w, 6, f.protocol);
  string(w, 7, f.fingerprint);
  for (const s of f.statements) {
    // StatementFacts (proto/agentgate/v1/policy.proto)
    w.tag(8, LEN).fork();
    string(w, 1, s.class);
    strings(w, 2, s.classes);
    strings(w, 3, s.reads);
    strings(w, 4, s.writes);
    strings(w, 5, s.functions);
    string(w, 6, s.fingerprint);
    string(w, 7, s.protectedSetting);
    w.join();
  }
  if (f.effect !== 0) w.tag(9, VARINT).int32(f.effect);
  string(w, 10, f.rule);
  string(w, 11, f.reason);
  string(w, 12, f.policyRevision);
  return w.finish();
}

export function encodeStatementCompleted(head: EventHead, f: CompletedFields): Uint8Array {
  const w = new BinaryWriter();
  writeHead(w, head);
  string(w, 2, f.statementId);
  string(w, 3, f.status);
  string(w, 4, f.commandTag);
  uint64(w, 5, f.rows);
  uint64(w, 6, f.durationMicros);
  string(w, 7, f.sqlstate);
  if (f.maskedCells !== undefined) {
    for (const [column, count] of Object.entries(f.maskedCells)) {
      w.tag(8, LEN).fork().tag(1, LEN).string(column).tag(2, VARINT).uint64(count).join();
    }
  }
  return w.finish();
}
