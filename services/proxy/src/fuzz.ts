// Hostile input for the proxy: random and mutated PostgreSQL frontend traffic, generated from a seed so that any
// failing connection can be replayed byte for byte. Pure: builds bytes and predictions, does no I/O.
import { MAX_STARTUP_PACKET_LENGTH, PROTOCOL_3_0, RequestCode } from "@agentgate/wire";
import { serialize } from "pg-protocol";

// ---- seeded randomness ---------------------------------------------------------------------------------------------

/** sfc32 seeded through splitmix32: fast, small, and the same sequence on every platform for the same seeds. */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(...seeds: number[]) {
    let state = 0x9e3779b9;
    for (const seed of seeds) state = (Math.imul(state ^ (seed >>> 0), 0x85ebca6b) + 0x6a09e667) >>> 0;
    const next = () => {
      state = (state + 0x9e3779b9) >>> 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#a = next();
    this.#b = next();
    this.#c = next();
    this.#d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  u32(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0;
    this.#c = (this.#c + t) >>> 0;
    return t;
  }

  /** A float in [0, 1). */
  float(): number {
    return this.u32() / 2 ** 32;
  }

  /** An integer in [min, max], both included. */
  int(min: number, max: number): number {
    return min + Math.floor(this.float() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)]!;
  }

  /** Picks a value with probability proportional to its weight. */
  weighted<T>(entries: readonly (readonly [number, T])[]): T {
    let roll = this.float() * entries.reduce((sum, [w]) => sum + w, 0);
    for (const [weight, value] of entries) {
      roll -= weight;
      if (roll < 0) return value;
    }
    return entries[entries.length - 1]![1];
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }
}

// ---- what the generator produces -----------------------------------------------------------------------------------

/** One unit of hostile input: a packet or message (valid, mutated or made up) and what was done to it. */
export interface FuzzMessage {
  label: string;
  bytes: Buffer;
}

/** One write to the socket, after a pause. */
export interface FuzzChunk {
  bytes: Buffer;
  pauseMs: number;
  /** How many of the script's messages are whole once this chunk is written. */
  messagesDone: number;
  /** An SSL/GSSENC request ends here: read this many one-byte answers in all before writing on (0: do not wait). */
  awaitAnswers: number;
}

/** How the client leaves: wait for the gateway to close, half-close (FIN), Terminate then FIN, or reset (RST). */
export type FuzzEnding = "wait" | "fin" | "terminate" | "reset";

/** What the gateway does with the bytes after a session has started, by the protocol's framing rules alone. */
export type RelayVerdict =
  | { kind: "violation"; code: string; reason: string }
  | { kind: "terminate" }
  /** No framing violation: the gateway relays and waits for more; only the server may end the session. */
  | { kind: "open" };

/** What the gateway must do with a script, predicted from the protocol rules (not from the gateway's code). */
export type Expectation =
  /** The gateway sends an ErrorResponse with this SQLSTATE and closes. */
  | { kind: "refused"; code: string; reason: string }
  /** A CancelRequest: the gateway closes without a word. */
  | { kind: "cancel" }
  /** A startup packet that never completes: the gateway waits, and its startup timeout ends the connection. */
  | { kind: "incomplete" }
  /** A startup message the gateway accepts; the server may still refuse it. Then the relay rules apply. */
  | { kind: "session"; relay: RelayVerdict }
  /** Depends on how the bytes were cut on the way (SSLRequest followed by data in the same read). */
  | { kind: "any"; reason: string };

export interface FuzzScript {
  index: number;
  /** "startup": hostile bytes from the first byte; "relay": hostile bytes after a valid, completed startup. */
  phase: "startup" | "relay";
  /** Relay scripts: a valid StartupMessage to send first; the client waits for ReadyForQuery before the chunks. */
  startup: Buffer | undefined;
  messages: FuzzMessage[];
  chunks: FuzzChunk[];
  ending: FuzzEnding;
  /** Pause before the FIN, Terminate or reset, letting the gateway answer what came last. */
  lingerMs: number;
  expect: Expectation;
  /** One-byte answers (SSL/GSSENC refusals) that precede the framed messages, when that is certain. */
  answers: number;
}

export interface FuzzOptions {
  /** The gateway's proxy.maxMessageSize. */
  maxMessageSize: number;
  /** The target (database name) clients connect to. */
  database: string;
  user: string;
  /** Upper bound for the sum of pauses in startup-phase scripts, well below the gateway's startup timeout. */
  startupPauseBudgetMs: number;
}

// ---- protocol facts --------------------------------------------------------------------------------------------------

/** Frontend message types of protocol 3.0 (PostgreSQL docs, "Message Formats"); anything else is a violation. */
const FRONTEND_TYPES = new Set([..."BCcdDEfFHPpQSX"].map((c) => c.charCodeAt(0)));
const TERMINATE = 0x58;
const STARTUP_3_0 = PROTOCOL_3_0;

/** Table the SQL below works on; the test creates it: CREATE TABLE fuzz (a int, b text). */
export const FUZZ_TABLE_DDL = "CREATE TABLE fuzz (a int, b text)";

/** Valid SQL, some of it failing on purpose; nothing long-running, nothing that takes locks others wait on long. */
const SQL = [
  "SELECT 1",
  "SELECT 1 AS a, 'two' AS b, now() AS c",
  "SELECT generate_series(1, 100)",
  "SELECT repeat('x', 10000)",
  "SELECT 1/0",
  "SELEC 1",
  "SELECT * FROM no_such_table",
  "SELECT 'unterminated",
  "BEGIN",
  "COMMIT",
  "ROLLBACK",
  "SAVEPOINT s1",
  "ROLLBACK TO SAVEPOINT s1",
  "INSERT INTO fuzz VALUES (1, 'one')",
  "INSERT INTO fuzz SELECT g, md5(g::text) FROM generate_series(1, 20) g",
  "SELECT a, b FROM fuzz ORDER BY a LIMIT 20",
  "SELECT count(*) FROM fuzz",
  "SELECT pg_sleep(0.01)",
  "COPY (SELECT g, g * 2 FROM generate_series(1, 20) g) TO STDOUT",
  "SELECT 1; SELECT 2; SELEC 3",
  "",
  ";",
  "LISTEN fuzz_channel; NOTIFY fuzz_channel, 'hello'",
  "DO $$ BEGIN RAISE NOTICE 'fuzz notice'; END $$",
  "SHOW server_version",
  "SET application_name = 'fuzzed'",
  "SELECT 'ünïcödé ✓' AS u, '\\x00ff'::bytea AS b",
  "SELECT null::int, true, 1.5::numeric, '{1,2}'::int[]",
  "CREATE TEMP TABLE t (x int); DROP TABLE t",
  "SELECT count(*) FROM pg_class",
];

/** Statements for Parse, with the parameter values Bind may send. */
const PREPARED: readonly (readonly [string, readonly (string | null)[]])[] = [
  ["SELECT $1::int + 1", ["41"]],
  ["SELECT $1::text, $2::int", ["a", "2"]],
  ["SELECT a, b FROM fuzz WHERE a = $1", ["1"]],
  ["INSERT INTO fuzz VALUES ($1, $2)", ["7", "seven"]],
  ["SELECT generate_series(1, $1::int)", ["50"]],
  ["SELECT $1::int / 0", ["1"]],
  ["SELECT 1", []],
  ["SELEC $1", ["x"]],
];

/** Harmless built-ins for FunctionCall, by their fixed OIDs: int4pl, upper, version, md5, pg_backend_pid. */
const FUNCTIONS = [
  { oid: 177, args: () => [int32(20), int32(22)], binary: true },
  { oid: 871, args: () => [Buffer.from("fuzz")], binary: false },
  { oid: 89, args: () => [], binary: false },
  { oid: 2311, args: () => [Buffer.from("fuzz")], binary: false },
  { oid: 2026, args: () => [], binary: false },
];

// ---- frontend messages -------------------------------------------------------------------------------------------------

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

/** A typed message with a correct length word. */
export function frontendMessage(type: string, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type.charCodeAt(0);
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}

/** A copy of a typed message with its length word replaced. */
export function withLength(message: Buffer, length: number): Buffer {
  const out = Buffer.from(message);
  out.writeInt32BE(length | 0, 1);
  return out;
}

/** FunctionCall ('F'): function OID, argument formats, arguments, result format. */
export function functionCall(oid: number, args: readonly (Buffer | null)[], binary: boolean): Buffer {
  const parts = [int32(oid), Buffer.from([0, 1, 0, binary ? 1 : 0])];
  const count = Buffer.alloc(2);
  count.writeInt16BE(args.length);
  parts.push(count);
  for (const arg of args) parts.push(arg === null ? int32(-1) : Buffer.concat([int32(arg.length), arg]));
  parts.push(Buffer.from([0, 0]));
  return frontendMessage("F", Buffer.concat(parts));
}

/** An untyped startup-phase packet: length word, then `code` and `body`. */
export function startupPacket(code: number, body: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([int32(8 + body.length), int32(code), body]);
}

/** A StartupMessage for protocol `version` with these parameters, terminated as the protocol says. */
export function startupMessage(parameters: readonly (readonly [string, string])[], version = STARTUP_3_0): Buffer {
  const body = Buffer.concat([...parameters.map(([k, v]) => Buffer.from(`${k}\0${v}\0`)), Buffer.from([0])]);
  return startupPacket(version, body);
}

// pg-protocol hands out shared constant buffers for some messages: never mutate what it returns, copy first.
const copy = (b: Buffer): Buffer => Buffer.from(b);

function validGroup(rng: Rng, options: FuzzOptions): FuzzMessage[] {
  const kind = rng.weighted([
    [30, "query"],
    [25, "extended"],
    [8, "copy-in"],
    [4, "copy-stray"],
    [6, "function"],
    [4, "flush"],
    [4, "sync"],
    [4, "close"],
    [1, "big-query"],
    [1, "terminate"],
  ] as const);
  switch (kind) {
    case "query":
      return [{ label: "Query", bytes: copy(serialize.query(rng.pick(SQL))) }];
    case "extended":
      return extended(rng);
    case "copy-in": {
      const rows = rng.int(0, 5);
      const out: FuzzMessage[] = [
        { label: "Query(COPY FROM STDIN)", bytes: copy(serialize.query("COPY fuzz FROM STDIN")) },
      ];
      for (let i = 0; i < rows; i++) {
        const line = rng.chance(0.8) ? `${rng.int(0, 1000)}\tcopied\n` : "not\ta\tnumber\n";
        out.push({ label: "CopyData", bytes: copy(serialize.copyData(Buffer.from(line))) });
      }
      const end = rng.weighted([
        [6, "done"],
        [2, "fail"],
        [1, "none"],
      ] as const);
      if (end === "done") out.push({ label: "CopyDone", bytes: copy(serialize.copyDone()) });
      if (end === "fail") out.push({ label: "CopyFail", bytes: copy(serialize.copyFail("fuzz says no")) });
      return out;
    }
    case "copy-stray":
      // Copy messages outside COPY: PostgreSQL ignores them, the gateway must relay them all the same.
      return [
        { label: "CopyData(stray)", bytes: copy(serialize.copyData(rng.bytes(rng.int(0, 64)))) },
        { label: "CopyDone(stray)", bytes: copy(serialize.copyDone()) },
      ];
    case "function": {
      const fn = rng.pick(FUNCTIONS);
      return [
        { label: `FunctionCall(${fn.oid})`, bytes: functionCall(fn.oid, fn.args(), fn.binary) },
        ...(rng.chance(0.3) ? [{ label: "Sync", bytes: copy(serialize.sync()) }] : []),
      ];
    }
    case "flush":
      return [{ label: "Flush", bytes: copy(serialize.flush()) }];
    case "sync":
      return [{ label: "Sync", bytes: copy(serialize.sync()) }];
    case "close":
      return [
        {
          label: "Close",
          bytes: copy(serialize.close({ type: rng.pick(["S", "P"] as const), name: rng.pick(["", "s1", "p1"]) })),
        },
      ];
    case "big-query": {
      // Large but under the limit, answered by a row of the same size (which must fit the limit too).
      const size = rng.int(64 * 1024, Math.floor(options.maxMessageSize * 0.8));
      return [{ label: `Query(${size} bytes)`, bytes: copy(serialize.query(`SELECT '${"y".repeat(size)}'`)) }];
    }
    case "terminate":
      return [{ label: "Terminate", bytes: copy(serialize.end()) }];
  }
}

function extended(rng: Rng): FuzzMessage[] {
  const statement = rng.chance(0.5) ? "" : rng.pick(["s1", "s2"]);
  const portal = rng.chance(0.7) ? "" : rng.pick(["p1", "p2"]);
  const [text, values] = rng.pick(PREPARED);
  const out: FuzzMessage[] = [];
  const add = (label: string, bytes: Buffer, keep = 0.95) => {
    if (rng.chance(keep)) out.push({ label, bytes: copy(bytes) });
  };
  add("Parse", serialize.parse({ name: statement, text, types: rng.chance(0.3) ? [23] : [] }));
  add("Bind", serialize.bind({ statement, portal, values: rng.chance(0.9) ? [...values] : ["1", "2", "3"] }));
  add(
    "Describe",
    serialize.describe({ type: rng.pick(["S", "P"] as const), name: rng.chance(0.5) ? portal : statement }),
  );
  add("Execute", serialize.execute({ portal, rows: rng.chance(0.3) ? rng.int(1, 5) : 0 }));
  if (rng.chance(0.2)) add("Flush", serialize.flush(), 1);
  if (rng.chance(0.2)) add("Close", serialize.close({ type: "S", name: statement }), 1);
  add("Sync", serialize.sync(), 0.85);
  return out;
}

// ---- mutations -------------------------------------------------------------------------------------------------------

/** A byte that is not a frontend message type. */
function unknownType(rng: Rng): number {
  for (;;) {
    const b = rng.int(0, 255);
    if (!FRONTEND_TYPES.has(b)) return b;
  }
}

function mutate(rng: Rng, message: FuzzMessage, options: FuzzOptions): FuzzMessage {
  const bytes = message.bytes;
  const kind = rng.weighted([
    [30, "bitflip"],
    [15, "truncate"],
    [25, "length"],
    [12, "type"],
    [10, "garbage"],
    [1, "oversize"],
  ] as const);
  switch (kind) {
    case "bitflip": {
      const out = Buffer.from(bytes);
      const flips = rng.int(1, 4);
      for (let i = 0; i < flips; i++) {
        // FunctionCall keeps its function OID (bytes 5-8): no random built-in gets called as the superuser.
        let at = rng.int(0, out.length - 1);
        if (out[0] === 0x46 && at >= 5 && at <= 8) at = 0;
        out[at] = out[at]! ^ (1 << rng.int(0, 7));
      }
      return { label: `${message.label}+bitflip(${flips})`, bytes: out };
    }
    case "truncate":
      return {
        label: `${message.label}+truncate`,
        bytes: Buffer.from(bytes.subarray(0, rng.int(1, bytes.length - 1))),
      };
    case "length": {
      const actual = bytes.length - 1;
      const max = options.maxMessageSize;
      const length = rng.weighted([
        [3, -1],
        [2, -(2 ** 31)],
        [2, -rng.int(2, 2 ** 31 - 1)],
        [2, rng.int(0, 3)],
        [4, actual + rng.int(1, 200)], // promises more than follows: the next messages become its body
        [2, Math.max(4, actual - rng.int(1, 16))], // says less than there is: the rest is read as a new message
        [2, max], // one byte over the limit once the type byte is counted
        [2, rng.int(max, 2 ** 31 - 1)],
        [1, 2 ** 31 - 1],
      ]);
      return { label: `${message.label}+length(${length})`, bytes: withLength(bytes, length) };
    }
    case "type": {
      const out = Buffer.from(bytes);
      out[0] = unknownType(rng);
      return { label: `${message.label}+type(0x${out[0]!.toString(16)})`, bytes: out };
    }
    case "garbage":
      return { label: "garbage", bytes: rng.bytes(rng.int(1, 64)) };
    case "oversize": {
      // A real message over the limit, not just a length word that says so.
      const size = options.maxMessageSize + rng.int(1, 4096);
      return { label: `Query(${size} bytes, over the limit)`, bytes: serialize.query("x".repeat(size)) };
    }
  }
}

function relayMessages(rng: Rng, options: FuzzOptions, count: number): FuzzMessage[] {
  const rate = rng.pick([0, 0.02, 0.05, 0.1, 0.2, 0.4]);
  const out: FuzzMessage[] = [];
  while (out.length < count) {
    for (const message of validGroup(rng, options))
      out.push(rng.chance(rate) ? mutate(rng, message, options) : message);
  }
  return out;
}

// ---- startup-phase packets -------------------------------------------------------------------------------------------

const EXTRA_PARAMETERS: readonly (readonly [string, string])[] = [
  ["application_name", "fuzz"],
  ["client_encoding", "UTF8"],
  ["client_encoding", "LATIN1"],
  ["client_encoding", "no-such-encoding"],
  ["DateStyle", "ISO, MDY"],
  ["options", "-c work_mem=64kB"],
  ["no_such_setting", "1"],
  ["fuzz.custom", "x"],
  ["_pq_.compression", "on"],
  ["_pq_.whatever", ""],
  ["", "empty key"],
];

function startupParameters(rng: Rng, options: FuzzOptions): [string, string][] {
  const params: [string, string][] = [];
  const userChoice = rng.weighted([
    [12, options.user],
    [1, ""],
    [1, undefined],
  ] as const);
  if (userChoice !== undefined) params.push(["user", userChoice]);
  const database = rng.weighted([
    [12, options.database],
    [1, "no_such_target"],
    [1, undefined],
  ] as const);
  if (database !== undefined) params.push(["database", database]);
  if (rng.chance(0.05)) params.push(["replication", rng.pick(["true", "database", "off"])]);
  for (let i = rng.int(0, 2); i > 0; i--) {
    const [key, value] = rng.pick(EXTRA_PARAMETERS);
    params.push([key, value]);
  }
  for (let i = params.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [params[i], params[j]] = [params[j]!, params[i]!];
  }
  return params;
}

function startupPackets(rng: Rng, options: FuzzOptions): FuzzMessage[] {
  const out: FuzzMessage[] = [];
  const valid = (): [string, string][] => [
    ["user", options.user],
    ["database", options.database],
  ];
  const count = rng.weighted([
    [6, 1],
    [3, 2],
    [1, 3],
  ]);
  for (let i = 0; i < count; i++) {
    const kind = rng.weighted([
      [10, "random-bytes"],
      [10, "startup"],
      [8, "startup-length"],
      [4, "startup-unterminated"],
      [3, "startup-no-value"],
      [8, "startup-version"],
      [6, "startup-bitflip"],
      [5, "startup-truncated"],
      [6, "ssl"],
      [3, "ssl-size"],
      [4, "gssenc"],
      [2, "gssenc-size"],
      [4, "cancel"],
      [3, "cancel-size"],
    ] as const);
    switch (kind) {
      case "random-bytes":
        out.push({ label: "random-bytes", bytes: rng.bytes(rng.int(1, 300)) });
        break;
      case "startup": {
        const bytes = startupMessage(
          startupParameters(rng, options),
          STARTUP_3_0 +
            rng.weighted([
              [6, 0],
              [1, 1],
              [1, 2],
              [1, 0xffff],
            ]),
        );
        out.push({ label: "StartupMessage", bytes });
        if (rng.chance(0.4)) out.push(...relayMessages(rng, options, rng.int(1, 6)));
        break;
      }
      case "startup-length": {
        const packet = startupMessage(valid());
        const length = rng.weighted([
          [2, rng.int(0, 7)],
          [2, -rng.int(1, 2 ** 31 - 1)],
          [2, MAX_STARTUP_PACKET_LENGTH + rng.int(1, 1000)],
          [1, 2 ** 31 - 1],
          [2, packet.length - rng.int(1, 8)],
          [2, packet.length + rng.int(1, 64)],
        ]);
        const bytes = Buffer.from(packet);
        bytes.writeInt32BE(length | 0, 0);
        out.push({ label: `StartupMessage+length(${length})`, bytes });
        break;
      }
      case "startup-unterminated": {
        const packet = startupMessage(valid());
        out.push({ label: "StartupMessage+no-terminator", bytes: startupPacket(STARTUP_3_0, packet.subarray(8, -1)) });
        break;
      }
      case "startup-no-value":
        out.push({
          label: "StartupMessage+no-value",
          bytes: startupPacket(STARTUP_3_0, Buffer.from("user\0agent\0database\0")),
        });
        break;
      case "startup-version": {
        const major = rng.pick([0, 1, 2, 4, 1234, 0xffff]);
        const minor = rng.pick([0, 1, 2, 0xffff]);
        const version = ((major << 16) | minor) >>> 0;
        out.push({ label: `StartupMessage(${major}.${minor})`, bytes: startupMessage(valid(), version | 0) });
        break;
      }
      case "startup-bitflip": {
        const bytes = Buffer.from(startupMessage(valid()));
        for (let f = rng.int(1, 3); f > 0; f--) {
          const at = rng.int(0, bytes.length - 1);
          bytes[at] = bytes[at]! ^ (1 << rng.int(0, 7));
        }
        out.push({ label: "StartupMessage+bitflip", bytes });
        break;
      }
      case "startup-truncated": {
        const packet = startupMessage(valid());
        out.push({
          label: "StartupMessage+truncated",
          bytes: Buffer.from(packet.subarray(0, rng.int(1, packet.length - 1))),
        });
        break;
      }
      case "ssl":
        out.push({ label: "SSLRequest", bytes: startupPacket(RequestCode.SSL) });
        break;
      case "ssl-size":
        out.push({ label: "SSLRequest+size", bytes: startupPacket(RequestCode.SSL, rng.bytes(rng.int(1, 16))) });
        break;
      case "gssenc":
        out.push({ label: "GSSENCRequest", bytes: startupPacket(RequestCode.GSSENC) });
        break;
      case "gssenc-size":
        out.push({ label: "GSSENCRequest+size", bytes: startupPacket(RequestCode.GSSENC, rng.bytes(rng.int(1, 16))) });
        break;
      case "cancel":
        out.push({ label: "CancelRequest", bytes: startupPacket(RequestCode.Cancel, rng.bytes(8)) });
        break;
      case "cancel-size": {
        const size = rng.pick([0, 1, 4, 7, 9, 12, 100, 256, 257, 300]);
        out.push({ label: `CancelRequest+key(${size})`, bytes: startupPacket(RequestCode.Cancel, rng.bytes(size)) });
        break;
      }
    }
  }
  return out;
}

// ---- prediction --------------------------------------------------------------------------------------------------------

/**
 * What the gateway must do with the bytes a client sends once its session runs, by the protocol's framing rules: a
 * length word under 4 or a message over the size limit is refused as soon as its header is in, an unknown type byte
 * once the whole message is, and nothing after Terminate counts.
 */
export function predictRelay(bytes: Buffer, maxMessageSize: number): RelayVerdict {
  let offset = 0;
  while (bytes.length - offset >= 5) {
    const type = bytes[offset]!;
    const length = bytes.readInt32BE(offset + 1);
    if (length < 4) return { kind: "violation", code: "08P01", reason: `length ${length} at byte ${offset}` };
    if (length + 1 > maxMessageSize) {
      return { kind: "violation", code: "54000", reason: `length ${length} over the limit at byte ${offset}` };
    }
    if (offset + 1 + length > bytes.length) return { kind: "open" };
    if (!FRONTEND_TYPES.has(type)) {
      return { kind: "violation", code: "08P01", reason: `type 0x${type.toString(16)} at byte ${offset}` };
    }
    if (type === TERMINATE) return { kind: "terminate" };
    offset += 1 + length;
  }
  return { kind: "open" };
}

/**
 * What the gateway must do with bytes sent from the first byte on, by PostgreSQL's startup rules as the gateway
 * documents them: only 3.x, loopback clients, a user, a configured target, no replication. `chunkEnds` are the offsets
 * where writes end; an SSLRequest followed by more bytes in the same write is refused, which depends on how TCP
 * delivers them, so such a script is "any".
 */
export function predictStartup(
  bytes: Buffer,
  chunkEnds: readonly number[],
  options: FuzzOptions,
): { expect: Expectation; answers: number; answerAt: Map<number, number> } {
  let offset = 0;
  let answers = 0;
  // Like PostgreSQL, the gateway answers one SSLRequest and one GSSENCRequest at most.
  const negotiated = new Set<number>();
  /** Chunk end → answers due by then, where the client must read them before it writes on. */
  const answerAt = new Map<number, number>();
  const done = (expect: Expectation) => ({ expect, answers, answerAt });
  const refused = (code: string, reason: string) => done({ kind: "refused", code, reason });
  for (;;) {
    if (bytes.length - offset < 4) return done({ kind: "incomplete" });
    const length = bytes.readInt32BE(offset);
    if (length < 8 || length > MAX_STARTUP_PACKET_LENGTH) return refused("08P01", `startup length ${length}`);
    if (bytes.length - offset < length) return done({ kind: "incomplete" });
    const end = offset + length;
    const code = bytes.readInt32BE(offset + 4);
    if (code === RequestCode.SSL || code === RequestCode.GSSENC) {
      if (length !== 8) return refused("08P01", "SSL/GSSENC request of the wrong size");
      if (negotiated.has(code)) return refused("08P01", "second SSL/GSSENC request");
      negotiated.add(code);
      const atChunkEnd = chunkEnds.includes(end);
      if (code === RequestCode.SSL && !atChunkEnd) return done({ kind: "any", reason: "data after SSLRequest" });
      answers++;
      if (atChunkEnd && end < bytes.length) answerAt.set(end, answers);
      offset = end;
      continue;
    }
    if (code === RequestCode.Cancel) {
      if (length < 16 || length > 12 + 256) return refused("08P01", "cancel request of the wrong size");
      return done({ kind: "cancel" });
    }
    if (code >>> 16 !== 3) return refused("0A000", `protocol ${code >>> 16}.${code & 0xffff}`);
    const params = parseParameters(bytes.subarray(offset + 8, end));
    if (params === undefined) return refused("08P01", "startup packet layout");
    const user = params.get("user");
    if (user === undefined || user === "") return refused("28000", "no user");
    const replication = params.get("replication");
    if (replication !== undefined && !["false", "off", "no", "0"].includes(replication.toLowerCase())) {
      return refused("0A000", "replication");
    }
    const target = params.get("database") || user;
    if (target !== options.database) return refused("3D000", `target ${target}`);
    return done({ kind: "session", relay: predictRelay(bytes.subarray(end), options.maxMessageSize) });
  }
}

/** Startup parameters (name\0value\0 ... \0), or undefined when the layout is broken. */
function parseParameters(body: Buffer): Map<string, string> | undefined {
  const params = new Map<string, string>();
  let offset = 0;
  for (;;) {
    const keyEnd = body.indexOf(0, offset);
    if (keyEnd < 0) return undefined;
    if (keyEnd === offset) return keyEnd === body.length - 1 ? params : undefined;
    const valueEnd = body.indexOf(0, keyEnd + 1);
    if (valueEnd < 0) return undefined;
    const key = body.toString("utf8", offset, keyEnd);
    if (!key.startsWith("_pq_.")) params.set(key, body.toString("utf8", keyEnd + 1, valueEnd));
    offset = valueEnd + 1;
  }
}

// ---- scripts -----------------------------------------------------------------------------------------------------------

function pause(rng: Rng, maxMs: number): number {
  return rng.weighted([
    [65, 0],
    [28, rng.int(1, 15)],
    [7, rng.int(30, Math.max(30, maxMs))],
  ]);
}

/** Where to cut `total` bytes into writes: whole, at message ends, at random offsets, or byte by byte. */
function cuts(rng: Rng, total: number, messageEnds: readonly number[]): number[] {
  const style = rng.weighted([
    [3, "whole"],
    [3, "messages"],
    [3, "random"],
    [1, "bytes"],
  ] as const);
  const at = new Set<number>();
  if (style === "messages") for (const end of messageEnds) at.add(end);
  if (style === "random") for (let i = rng.int(1, 8); i > 0; i--) at.add(rng.int(1, Math.max(1, total - 1)));
  if (style === "bytes") {
    if (total <= 256) for (let i = 1; i < total; i++) at.add(i);
    else for (let i = 0; i < 64; i++) at.add(rng.int(1, total - 1));
  }
  at.delete(0);
  at.add(total);
  return [...at].filter((n) => n <= total).sort((a, b) => a - b);
}

/** Cuts the hostile bytes into writes with pauses; `budgetMs` caps the sum of the pauses. */
function toChunks(
  rng: Rng,
  messages: readonly FuzzMessage[],
  ends: readonly number[],
  maxPauseMs: number,
  budgetMs: number,
): FuzzChunk[] {
  const bytes = Buffer.concat(messages.map((m) => m.bytes));
  const chunkEnds = cuts(rng, bytes.length, ends);
  let start = 0;
  let spent = 0;
  return chunkEnds.map((end) => {
    let pauseMs = start === 0 ? 0 : pause(rng, maxPauseMs);
    if (spent + pauseMs > budgetMs) pauseMs = 0;
    spent += pauseMs;
    const chunk = {
      bytes: bytes.subarray(start, end),
      pauseMs,
      messagesDone: ends.filter((e) => e <= end).length,
      awaitAnswers: 0,
    };
    start = end;
    return chunk;
  });
}

function messageEnds(messages: readonly FuzzMessage[]): number[] {
  let offset = 0;
  return messages.map((m) => {
    offset += m.bytes.length;
    return offset;
  });
}

/** After a violation or Terminate the rest is never read: keep at most a couple of messages beyond it. */
function trimAfter(messages: FuzzMessage[], rng: Rng, options: FuzzOptions): FuzzMessage[] {
  for (let n = 1; n <= messages.length; n++) {
    if (predictRelay(Buffer.concat(messages.slice(0, n).map((m) => m.bytes)), options.maxMessageSize).kind !== "open") {
      return messages.slice(0, Math.min(messages.length, n + rng.int(0, 2)));
    }
  }
  return messages;
}

function endingFor(rng: Rng, expect: Expectation): FuzzEnding {
  switch (expect.kind) {
    case "refused":
    case "cancel":
      return "wait";
    case "incomplete":
      return rng.chance(0.5) ? "wait" : rng.pick(["fin", "reset"] as const);
    case "any":
      return "fin";
    case "session":
      if (expect.relay.kind === "violation") return "wait";
      return rng.weighted([
        [6, "fin"],
        [2, "terminate"],
        [2, "reset"],
      ] as const);
  }
}

/** Script number `index` of the run seeded with `seed`: the same bytes, cuts and pauses every time. */
export function fuzzScript(seed: number, index: number, options: FuzzOptions): FuzzScript {
  const rng = new Rng(seed, index);
  const phase = rng.chance(0.3) ? "startup" : "relay";
  if (phase === "relay") {
    const count = rng.weighted([
      [3, rng.int(1, 10)],
      [4, rng.int(10, 40)],
      [2, rng.int(40, 120)],
    ]);
    const messages = trimAfter(relayMessages(rng, options, count), rng, options);
    const chunks = toChunks(rng, messages, messageEnds(messages), 300, 1500);
    const relay = predictRelay(Buffer.concat(messages.map((m) => m.bytes)), options.maxMessageSize);
    const expect: Expectation = { kind: "session", relay };
    return {
      index,
      phase,
      startup: startupMessage([
        ["user", options.user],
        ["database", options.database],
        ["application_name", `fuzz-${index}`],
      ]),
      messages,
      chunks,
      ending: endingFor(rng, expect),
      lingerMs: rng.weighted([
        [3, 0],
        [2, rng.int(1, 50)],
      ]),
      expect,
      answers: 0,
    };
  }
  const messages = startupPackets(rng, options);
  const ends = messageEnds(messages);
  const chunks = toChunks(rng, messages, ends, 150, options.startupPauseBudgetMs);
  const bytes = Buffer.concat(messages.map((m) => m.bytes));
  const chunkEnds = messageEnds(chunks.map((c) => ({ label: "", bytes: c.bytes })));
  const predicted = predictStartup(bytes, chunkEnds, options);
  for (const [i, end] of chunkEnds.entries()) chunks[i]!.awaitAnswers = predicted.answerAt.get(end) ?? 0;
  return {
    index,
    phase,
    startup: undefined,
    messages,
    chunks,
    ending: endingFor(rng, predicted.expect),
    lingerMs: rng.int(0, 20),
    expect: predicted.expect,
    answers: predicted.expect.kind === "any" ? -1 : predicted.answers,
  };
}

/** A short description of a script for failure messages: its index, phase, expectation and message labels. */
export function describeScript(script: FuzzScript): string {
  const labels = script.messages.map((m) => m.label);
  const shown = labels.length > 12 ? [...labels.slice(0, 6), "…", ...labels.slice(-5)] : labels;
  return `#${script.index} ${script.phase} ${JSON.stringify(script.expect)} ending=${script.ending} [${shown.join(", ")}]`;
}
