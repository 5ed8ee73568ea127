// One DataRow cell in, its masked replacement out, in the column's own type and format, so that a client decodes a
// value of the type the RowDescription announced. What each type gets is tabulated in ../README.md; a type this
// file does not know how to write gets SQL NULL rather than bytes a client might choke on.
import { redactJsonText, redactText } from "./detectors.ts";
import type { Hasher } from "./hmac.ts";
import type { Mask } from "./rules.ts";

/** An output column's type as RowDescription announces it. */
export interface ColumnType {
  /** Type OID (PostgreSQL reports a domain's base type). */
  readonly oid: number;
  /** 0 text, 1 binary. */
  readonly format: number;
  /**
   * For types outside the built-in table below: true when the catalog says the type's values are strings in both
   * formats (typcategory 'S' such as citext, or an enum, 'E'), false when they are not. Left out, a type with an OID
   * of 16384 or more is treated as a string in text format and gets NULL in binary format; built-in types outside
   * the table always get NULL.
   */
  readonly textLike?: boolean;
}

/**
 * Masks one non-NULL cell. Returns the replacement bytes, null for SQL NULL, or `value` itself when nothing had to
 * change (only `detect` does that: it replaces what it recognises and leaves the rest).
 */
export type CellMasker = (value: Uint8Array, hasher: Hasher) => Uint8Array | null;

/** Masks one cell; a NULL cell stays NULL whatever the strategy (only its absence of value is visible). */
export function maskValue(value: Uint8Array | null, mask: Mask, type: ColumnType, hasher: Hasher): Uint8Array | null {
  return value === null ? null : cellMasker(mask, type)(value, hasher);
}

/** Type OIDs this file knows how to write. */
export const OID = {
  bool: 16,
  bytea: 17,
  char: 18,
  name: 19,
  int8: 20,
  int2: 21,
  int4: 23,
  text: 25,
  json: 114,
  xml: 142,
  float4: 700,
  float8: 701,
  unknown: 705,
  bpchar: 1042,
  varchar: 1043,
  date: 1082,
  timestamp: 1114,
  timestamptz: 1184,
  numeric: 1700,
  cstring: 2275,
  uuid: 2950,
  jsonb: 3802,
  textArray: 1009,
  varcharArray: 1015,
  bpcharArray: 1014,
} as const;

/** OIDs below this are PostgreSQL's own; user-defined types (citext, enums) get OIDs from here up. */
const FIRST_NORMAL_OID = 16384;

const TEXT_OIDS: ReadonlySet<number> = new Set([
  OID.text,
  OID.varchar,
  OID.bpchar,
  OID.name,
  OID.unknown,
  OID.cstring,
  OID.xml,
]);

/** Text-format arrays whose elements are strings: `detect` may rewrite inside them (the replacement needs no quoting). */
const TEXT_ARRAY_OIDS: ReadonlySet<number> = new Set([OID.textArray, OID.varcharArray, OID.bpcharArray]);

/** Maskers that ignore the value, and what they always return: rows.ts then need not even look at the cell. */
const FIXED = new WeakMap<CellMasker, Uint8Array | null>();

/** The replacement a masker always returns whatever the value (bytes or NULL), or undefined when it depends on it. */
export function fixedReplacement(masker: CellMasker): Uint8Array | null | undefined {
  return FIXED.has(masker) ? FIXED.get(masker)! : undefined;
}

/**
 * A string masker whose output rows.ts may write straight into the row it builds, sparing the intermediate arrays:
 * `partial` (STARS and the last characters) and `hash` (HASH_PREFIX and 16 hex digits) for string types, in either
 * format. Written in place, the bytes are those the masker returns (rows.test.ts compares the two).
 */
export interface InPlaceText {
  readonly strategy: "partial" | "hash";
  /** Characters kept by `partial`. */
  readonly keep: number;
  /** bpchar: trailing spaces are padding, dropped before the value is used. */
  readonly trimSpaces: boolean;
}

const IN_PLACE = new WeakMap<CellMasker, InPlaceText>();

/** How to write `masker`'s output in place, or undefined when only the masker itself can make it. */
export function inPlaceText(masker: CellMasker): InPlaceText | undefined {
  return IN_PLACE.get(masker);
}

const NULL_MASKER: CellMasker = () => null;
FIXED.set(NULL_MASKER, null);
const UNCHANGED: CellMasker = (value) => value;

/** The masker for one column: chosen once per RowDescription, then applied to every cell of the column. */
export function cellMasker(mask: Mask, type: ColumnType): CellMasker {
  if (mask.strategy === "null") return NULL_MASKER;
  const binary = type.format === 1;
  const family = familyOf(type);
  switch (family) {
    case "text":
      return textMasker(mask, type.oid);
    case "json":
      return jsonMasker(mask, type.oid === OID.jsonb && binary);
    case "int2":
    case "int4":
    case "int8":
      return integerMasker(mask, family, binary);
    case "numeric":
      return numericMasker(mask, binary);
    case "float4":
    case "float8":
      return floatMasker(mask, family, binary);
    case "bool":
      return mask.strategy === "detect" ? UNCHANGED : constant(binary ? Uint8Array.of(0) : ascii("f"));
    case "date":
    case "timestamp":
    case "timestamptz":
      return mask.strategy === "detect" ? UNCHANGED : constant(EPOCH[family][binary ? 1 : 0]);
    case "uuid":
      return uuidMasker(mask, binary);
    case "bytea":
      return byteaMasker(mask, binary);
    case "textArray":
      return mask.strategy === "detect" ? detectInPlace : NULL_MASKER;
    case "other":
      return mask.strategy === "detect" ? UNCHANGED : NULL_MASKER;
  }
}

type Family =
  | "text"
  | "json"
  | "int2"
  | "int4"
  | "int8"
  | "numeric"
  | "float4"
  | "float8"
  | "bool"
  | "date"
  | "timestamp"
  | "timestamptz"
  | "uuid"
  | "bytea"
  | "textArray"
  | "other";

function familyOf(type: ColumnType): Family {
  const { oid } = type;
  if (TEXT_OIDS.has(oid)) return "text";
  switch (oid) {
    case OID.json:
    case OID.jsonb:
      return "json";
    case OID.int2:
      return "int2";
    case OID.int4:
      return "int4";
    case OID.int8:
      return "int8";
    case OID.numeric:
      return "numeric";
    case OID.float4:
      return "float4";
    case OID.float8:
      return "float8";
    case OID.bool:
      return "bool";
    case OID.date:
      return "date";
    case OID.timestamp:
      return "timestamp";
    case OID.timestamptz:
      return "timestamptz";
    case OID.uuid:
      return "uuid";
    case OID.bytea:
      return "bytea";
  }
  if (TEXT_ARRAY_OIDS.has(oid) && type.format === 0) return "textArray";
  if (type.textLike === true) return "text";
  if (type.textLike === undefined && oid >= FIRST_NORMAL_OID && type.format === 0) return "text";
  return "other";
}

// --- text -------------------------------------------------------------------------------------------------------

export const STARS = ascii("****");
export const HASH_PREFIX = ascii("h:");

function textMasker(mask: Mask, oid: number): CellMasker {
  const bpchar = oid === OID.bpchar;
  switch (mask.strategy) {
    case "redact":
      return constant(STARS);
    case "partial": {
      // The tail of an XML document may cut through markup: xml gets what redact gives.
      if (oid === OID.xml) return constant(STARS);
      const masker: CellMasker = (value) => concat(STARS, tail(bpchar ? trimSpaces(value) : value, mask.keep));
      IN_PLACE.set(masker, { strategy: "partial", keep: mask.keep, trimSpaces: bpchar });
      return masker;
    }
    case "hash": {
      const masker: CellMasker = (value, hasher) =>
        concat(HASH_PREFIX, hex(hasher.digest(bpchar ? trimSpaces(value) : value), 8));
      IN_PLACE.set(masker, { strategy: "hash", keep: 0, trimSpaces: bpchar });
      return masker;
    }
    default:
      return detectInPlace;
  }
}

/** Runs the content detectors over a UTF-8 value; the value itself when they find nothing. */
const detectInPlace: CellMasker = (value) => {
  const { text, found } = redactText(utf8.decode(value));
  return found.length === 0 ? value : utf8.encode(text);
};

// --- json and jsonb ---------------------------------------------------------------------------------------------

// Binary jsonb is a version byte (1) and the text; binary json is the text.
const JSONB_VERSION = 1;

function jsonMasker(mask: Mask, jsonbBinary: boolean): CellMasker {
  const out = jsonbBinary
    ? (text: Uint8Array) => concat(Uint8Array.of(JSONB_VERSION), text)
    : (text: Uint8Array) => text;
  const body = jsonbBinary
    ? (value: Uint8Array) => (value[0] === JSONB_VERSION ? value.subarray(1) : undefined)
    : (value: Uint8Array) => value;
  switch (mask.strategy) {
    case "redact":
      return constant(out(ascii('"****"')));
    case "partial":
      return (value) => {
        const text = body(value);
        if (text === undefined) return null;
        return out(utf8.encode(JSON.stringify(`****${utf8.decode(tail(jsonStringContent(text), mask.keep))}`)));
      };
    case "hash":
      return (value, hasher) => {
        const text = body(value);
        if (text === undefined) return null;
        return out(utf8.encode(`"h:${hexString(hasher.digest(text), 8)}"`));
      };
    default:
      return (value) => {
        const text = body(value);
        if (text === undefined) return null;
        const { text: redacted, changed } = redactJsonText(utf8.decode(text));
        return changed ? out(utf8.encode(redacted)) : value;
      };
  }
}

/** The characters of a JSON string value (its quotes and escapes removed), else the JSON text as it is. */
function jsonStringContent(text: Uint8Array): Uint8Array {
  if (text[0] !== 0x22) return text;
  try {
    const parsed: unknown = JSON.parse(utf8.decode(text));
    return typeof parsed === "string" ? utf8.encode(parsed) : text;
  } catch {
    return text;
  }
}

// --- integers, numeric, floats ------------------------------------------------------------------------------------

const INTEGER_BYTES = { int2: 2, int4: 4, int8: 8 } as const;

function integerMasker(mask: Mask, family: "int2" | "int4" | "int8", binary: boolean): CellMasker {
  const width = INTEGER_BYTES[family];
  if (mask.strategy === "detect") return UNCHANGED;
  if (mask.strategy !== "hash") return constant(binary ? new Uint8Array(width) : ascii("0"));
  return (value, hasher) => {
    // Text output of an integer is already its canonical decimal; binary is turned into the same text, so both
    // formats (and int2/int4/int8 alike) hash a value the same way.
    const digest = hasher.digest(binary ? ascii(readSigned(value, width).toString()) : value);
    if (binary) return digest.slice(0, width);
    return ascii(readSigned(digest, width).toString());
  };
}

/** A big-endian two's complement integer of `width` bytes. */
function readSigned(bytes: Uint8Array, width: number): bigint {
  if (bytes.length < width) throw new RangeError("integer value shorter than its type");
  let value = 0n;
  for (let i = 0; i < width; i++) value = (value << 8n) | BigInt(bytes[i]!);
  return BigInt.asIntN(width * 8, value);
}

// Binary numeric: int16 ndigits, int16 weight, uint16 sign, uint16 dscale, then ndigits base-10000 digits (int16).
const NUMERIC_ZERO = new Uint8Array(8);

function numericMasker(mask: Mask, binary: boolean): CellMasker {
  if (mask.strategy === "detect") return UNCHANGED;
  if (mask.strategy !== "hash") return constant(binary ? NUMERIC_ZERO : ascii("0"));
  return (value, hasher) => {
    const digest = hasher.digest(binary ? ascii(numericBinaryToText(value)) : value);
    // 48 bits: at most 15 digits, exact in a double for clients that read numeric as a JavaScript number.
    const n = digest[0]! * 2 ** 40 + digest[1]! * 2 ** 32 + readUint32(digest, 2);
    return binary ? encodeNumericInteger(n) : ascii(String(n));
  };
}

/** The binary numeric for a non-negative integer below 2**53. */
export function encodeNumericInteger(n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError("expected a non-negative safe integer");
  if (n === 0) return NUMERIC_ZERO;
  const groups: number[] = [];
  for (let rest = n; rest > 0; rest = Math.floor(rest / 10000)) groups.unshift(rest % 10000);
  const weight = groups.length - 1;
  while (groups.length > 0 && groups[groups.length - 1] === 0) groups.pop();
  const out = new Uint8Array(8 + 2 * groups.length);
  const view = new DataView(out.buffer);
  view.setInt16(0, groups.length);
  view.setInt16(2, weight);
  // sign 0 (positive) and dscale 0 are already zero.
  for (const [i, group] of groups.entries()) view.setInt16(8 + 2 * i, group);
  return out;
}

/** The text PostgreSQL prints for a binary numeric (numeric_out), for hashing both formats alike. */
export function numericBinaryToText(value: Uint8Array): string {
  if (value.length < 8) throw new RangeError("numeric value shorter than its header");
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  const ndigits = view.getInt16(0);
  const weight = view.getInt16(2);
  const sign = view.getUint16(4);
  const dscale = view.getUint16(6);
  if (sign === 0xc000) return "NaN";
  if (sign === 0xd000) return "Infinity";
  if (sign === 0xf000) return "-Infinity";
  if (value.length < 8 + 2 * ndigits) throw new RangeError("numeric value shorter than its digits");
  const digit = (i: number) => (i >= 0 && i < ndigits ? view.getInt16(8 + 2 * i) : 0);
  let text = sign === 0x4000 ? "-" : "";
  if (weight < 0) text += "0";
  else for (let i = 0; i <= weight; i++) text += i === 0 ? String(digit(i)) : String(digit(i)).padStart(4, "0");
  if (dscale > 0) {
    let fraction = "";
    for (let i = weight + 1; fraction.length < dscale; i++) fraction += String(digit(i)).padStart(4, "0");
    text += `.${fraction.slice(0, dscale)}`;
  }
  return text;
}

function floatMasker(mask: Mask, family: "float4" | "float8", binary: boolean): CellMasker {
  const width = family === "float4" ? 4 : 8;
  if (mask.strategy === "detect") return UNCHANGED;
  if (mask.strategy !== "hash") return constant(binary ? new Uint8Array(width) : ascii("0"));
  return (value, hasher) => {
    const number = binary ? readFloat(value, width) : Number.parseFloat(utf8.decode(value));
    const canonical = String(family === "float4" ? Math.fround(number) : number);
    const digest = hasher.digest(ascii(canonical));
    // An integer the type holds exactly: 24 bits for float4, 53 for float8.
    const n =
      family === "float4"
        ? (digest[0]! << 16) | (digest[1]! << 8) | digest[2]!
        : (digest[0]! & 0x1f) * 2 ** 48 + digest[1]! * 2 ** 40 + digest[2]! * 2 ** 32 + readUint32(digest, 3);
    if (!binary) return ascii(String(n));
    const out = new Uint8Array(width);
    const view = new DataView(out.buffer);
    if (width === 4) view.setFloat32(0, n);
    else view.setFloat64(0, n);
    return out;
  };
}

function readFloat(value: Uint8Array, width: number): number {
  if (value.length < width) throw new RangeError("float value shorter than its type");
  const view = new DataView(value.buffer, value.byteOffset, width);
  return width === 4 ? view.getFloat32(0) : view.getFloat64(0);
}

// --- dates and times: a fixed value, PostgreSQL's epoch --------------------------------------------------------

// 2000-01-01, where binary dates (days) and timestamps (microseconds) count from: all zero bytes. The Unix epoch
// would be negative there, which some binary decoders (pg-types) get wrong.
const EPOCH: Record<"date" | "timestamp" | "timestamptz", readonly [Uint8Array, Uint8Array]> = {
  date: [ascii("2000-01-01"), new Uint8Array(4)],
  timestamp: [ascii("2000-01-01 00:00:00"), new Uint8Array(8)],
  timestamptz: [ascii("2000-01-01 00:00:00+00"), new Uint8Array(8)],
};

// --- uuid -------------------------------------------------------------------------------------------------------

const NIL_UUID_TEXT = ascii("00000000-0000-0000-0000-000000000000");

function uuidMasker(mask: Mask, binary: boolean): CellMasker {
  if (mask.strategy === "detect") return UNCHANGED;
  if (mask.strategy !== "hash") return constant(binary ? new Uint8Array(16) : NIL_UUID_TEXT);
  return (value, hasher) => {
    const canonical = binary ? ascii(uuidText(value)) : value;
    const bytes = hasher.digest(canonical).slice(0, 16);
    // RFC 9562 version 8 (vendor-specific), variant 10: a well-formed UUID that says it was made up.
    bytes[6] = (bytes[6]! & 0x0f) | 0x80;
    bytes[8] = (bytes[8]! & 0x3f) | 0x80;
    return binary ? bytes : ascii(uuidText(bytes));
  };
}

function uuidText(bytes: Uint8Array): string {
  if (bytes.length < 16) throw new RangeError("uuid value shorter than 16 bytes");
  const h = hexString(bytes, 16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// --- bytea ------------------------------------------------------------------------------------------------------

const BYTEA_HEX_PREFIX = ascii("\\x");

function byteaMasker(mask: Mask, binary: boolean): CellMasker {
  if (mask.strategy === "detect") return UNCHANGED;
  if (mask.strategy !== "hash") return constant(binary ? new Uint8Array(0) : BYTEA_HEX_PREFIX);
  return (value, hasher) => {
    const digest = hasher.digest(binary ? value : byteaTextToBytes(value));
    return binary ? digest.slice(0, 8) : concat(BYTEA_HEX_PREFIX, hex(digest, 8));
  };
}

/** The bytes of a bytea in text format: hex (`\x0aff`) or the older escape format (`a\000\\`). */
export function byteaTextToBytes(value: Uint8Array): Uint8Array {
  if (value[0] === 0x5c && value[1] === 0x78) {
    const out = new Uint8Array((value.length - 2) >> 1);
    for (let i = 0; i < out.length; i++) out[i] = (hexDigit(value[2 + 2 * i]!) << 4) | hexDigit(value[3 + 2 * i]!);
    return out;
  }
  const out: number[] = [];
  for (let i = 0; i < value.length; i++) {
    const byte = value[i]!;
    if (byte !== 0x5c) out.push(byte);
    else if (value[i + 1] === 0x5c) {
      out.push(0x5c);
      i++;
    } else {
      out.push(((value[i + 1]! - 48) << 6) | ((value[i + 2]! - 48) << 3) | (value[i + 3]! - 48));
      i += 3;
    }
  }
  return Uint8Array.from(out);
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  throw new RangeError("not a hex digit in a bytea value");
}

// --- bytes ------------------------------------------------------------------------------------------------------

const utf8 = { encode: (s: string) => encoder.encode(s), decode: (b: Uint8Array) => decoder.decode(b) };
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function ascii(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

function constant(bytes: Uint8Array): CellMasker {
  const masker: CellMasker = () => bytes;
  FIXED.set(masker, bytes);
  return masker;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

const HEX = ascii("0123456789abcdef");

/** The first `count` bytes of `bytes` as lower-case hex. */
function hex(bytes: Uint8Array, count: number): Uint8Array {
  const out = new Uint8Array(count * 2);
  for (let i = 0; i < count; i++) {
    out[2 * i] = HEX[bytes[i]! >> 4]!;
    out[2 * i + 1] = HEX[bytes[i]! & 15]!;
  }
  return out;
}

function hexString(bytes: Uint8Array, count: number): string {
  return String.fromCharCode(...hex(bytes, count));
}

function readUint32(bytes: Uint8Array, at: number): number {
  return bytes[at]! * 2 ** 24 + ((bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!);
}

/** bpchar pads with spaces, which are not part of the value as PostgreSQL compares it. */
function trimSpaces(value: Uint8Array): Uint8Array {
  let end = value.length;
  while (end > 0 && value[end - 1] === 0x20) end--;
  return value.subarray(0, end);
}

/**
 * The last `keep` characters (code points) of a UTF-8 value, but never more than half of them: a short value would
 * otherwise be shown whole.
 */
function tail(value: Uint8Array, keep: number): Uint8Array {
  let characters = 0;
  for (let i = 0; i < value.length; i++) if ((value[i]! & 0xc0) !== 0x80) characters++;
  const shown = Math.min(keep, characters >> 1);
  if (shown === 0) return value.subarray(value.length);
  let seen = 0;
  for (let i = value.length - 1; i >= 0; i--) {
    if ((value[i]! & 0xc0) !== 0x80 && ++seen === shown) return value.subarray(i);
  }
  return value;
}
