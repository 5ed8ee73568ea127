// Whole rows: a DataRow message, or one row of COPY TO output (text or CSV), rewritten with the masked cells
// replaced and every other byte copied as it came. A row the plan leaves alone is returned as the same Buffer.
import { MaskingError } from "./errors.ts";
import type { Hasher } from "./hmac.ts";
import type { Mask } from "./rules.ts";
import {
  type CellMasker,
  type ColumnType,
  cellMasker,
  fixedReplacement,
  HASH_PREFIX,
  type InPlaceText,
  inPlaceText,
  STARS,
} from "./values.ts";

/** One entry per output column, in RowDescription order: its mask, or undefined for a column sent in clear. */
export type MaskPlan = readonly (Mask | undefined)[];

/** A plan compiled for one result set: made once per RowDescription, applied to each of its rows. */
export interface RowMasker {
  /** True when the plan masks nothing: every row may be forwarded without calling this masker at all. */
  readonly passthrough: boolean;
  /** Values replaced so far, per output column (counts only, never values), for the statement's audit record. */
  readonly masked: readonly number[];
  /** Masks one DataRow message ('D', int32 length, int16 count, cells); the same Buffer when nothing changed. */
  dataRow(message: Buffer): Buffer;
  /** Masks one row of COPY text output (a CopyData payload, newline included); the same Buffer when unchanged. */
  copyTextRow(line: Buffer, options?: CopyTextOptions): Buffer;
  /** Masks one row of COPY CSV output (a CopyData payload); the same Buffer when unchanged. */
  copyCsvRow(line: Buffer, options?: CopyCsvOptions): Buffer;
}

export interface CopyTextOptions {
  /** COPY's DELIMITER, one single-byte character; default tab. */
  delimiter?: string;
  /** COPY's NULL string; default `\N`. */
  null?: string;
}

export interface CopyCsvOptions {
  /** Default comma. */
  delimiter?: string;
  /** Default the empty string (an unquoted empty field). */
  null?: string;
  /** Default `"`. */
  quote?: string;
  /** Default the quote character. */
  escape?: string;
}

/**
 * Compiles `plan` for a result set whose columns have `types` (from its RowDescription). COPY rows are masked as
 * text format whatever `types` says about the format, since COPY text and CSV carry each type's text output.
 */
export function createRowMasker(plan: MaskPlan, types: readonly ColumnType[], hasher: Hasher): RowMasker {
  const compiled = compile(plan, types);
  const { passthrough } = compiled;
  const masked = new Array<number>(plan.length).fill(0);
  return {
    passthrough,
    masked,
    dataRow: (message) => (passthrough ? message : maskDataRowWith(message, compiled, hasher, masked)),
    copyTextRow: (line, options) => (passthrough ? line : maskCopyTextRowWith(line, compiled, hasher, masked, options)),
    copyCsvRow: (line, options) => (passthrough ? line : maskCopyCsvRowWith(line, compiled, hasher, masked, options)),
  };
}

/**
 * Masks one DataRow message. The plan compiled for the last call is reused while `plan` and `types` are the same
 * arrays, so calling this for every row of a result set costs little more than createRowMasker().
 */
export function maskDataRow(
  message: Buffer,
  plan: MaskPlan,
  types: readonly ColumnType[],
  hasher: Hasher,
): { message: Buffer; masked: number[] } {
  const compiled = compiledFor(plan, types);
  const masked = new Array<number>(plan.length).fill(0);
  const out = compiled.passthrough ? message : maskDataRowWith(message, compiled, hasher, masked);
  return { message: out, masked };
}

/**
 * Masks one row of COPY text output. `types` (text format is assumed) lets a masked value keep its type, so the
 * output can be loaded back with COPY FROM; without it every column is masked as text.
 */
export function maskCopyTextRow(
  line: Buffer,
  plan: MaskPlan,
  hasher: Hasher,
  options: CopyTextOptions & { types?: readonly ColumnType[] } = {},
): { line: Buffer; masked: number[] } {
  const masker = createRowMasker(plan, options.types ?? plan.map(() => TEXT), hasher);
  return { line: masker.copyTextRow(line, options), masked: [...masker.masked] };
}

/** Masks one row of COPY CSV output; as maskCopyTextRow. */
export function maskCopyCsvRow(
  line: Buffer,
  plan: MaskPlan,
  hasher: Hasher,
  options: CopyCsvOptions & { types?: readonly ColumnType[] } = {},
): { line: Buffer; masked: number[] } {
  const masker = createRowMasker(plan, options.types ?? plan.map(() => TEXT), hasher);
  return { line: masker.copyCsvRow(line, options), masked: [...masker.masked] };
}

/** A plan made ready for rows: a masker per masked column, and the constant ones' replacements. */
interface Compiled {
  passthrough: boolean;
  cells: Cells;
  fixed: readonly (Uint8Array | null | undefined)[];
  /** Per column, how to write its masked value straight into the output row, where that is known. */
  inPlace: readonly (InPlaceText | undefined)[];
  /**
   * When every masked column's output is fixed or written in place: how many bytes a row can grow at most, so that
   * rows are built in one pass; otherwise -1.
   */
  maxGrowth: number;
  /** Maskers for COPY (text output), made when first needed. */
  copy: () => Cells;
  edits: Edits;
}

function compile(plan: MaskPlan, types: readonly ColumnType[]): Compiled {
  if (plan.length !== types.length) {
    throw new MaskingError("plan_mismatch", `a plan for ${plan.length} columns given ${types.length} column types`);
  }
  const cells = plan.map((mask, i) => (mask === undefined ? undefined : cellMasker(mask, types[i]!)));
  const fixed = cells.map((cell) => (cell === undefined ? undefined : fixedReplacement(cell)));
  const inPlace = cells.map((cell) => (cell === undefined ? undefined : inPlaceText(cell)));
  let maxGrowth = 0;
  for (let i = 0; i < cells.length; i++) {
    if (cells[i] === undefined) continue;
    const replacement = fixed[i];
    const written = inPlace[i];
    if (replacement !== undefined) maxGrowth += replacement === null ? 0 : replacement.length;
    else if (written?.strategy === "partial")
      maxGrowth += STARS.length; // the kept tail is part of the value
    else if (written?.strategy === "hash") maxGrowth += HASH_TEXT_LENGTH;
    else {
      maxGrowth = -1;
      break;
    }
  }
  let copyCells: Cells | undefined;
  return {
    passthrough: cells.every((cell) => cell === undefined),
    cells,
    fixed,
    inPlace,
    maxGrowth,
    copy: () =>
      (copyCells ??= plan.map((mask, i) =>
        mask === undefined ? undefined : cellMasker(mask, { ...types[i]!, format: 0 }),
      )),
    edits: new Edits(),
  };
}

let last: { plan: MaskPlan; types: readonly ColumnType[]; compiled: Compiled } | undefined;

function compiledFor(plan: MaskPlan, types: readonly ColumnType[]): Compiled {
  if (last?.plan !== plan || last.types !== types) last = { plan, types, compiled: compile(plan, types) };
  return last.compiled;
}

const TEXT: ColumnType = { oid: 25, format: 0 };

type Cells = readonly (CellMasker | undefined)[];

/** Byte ranges of a row to replace, kept between rows so that masking a row allocates only its output. */
class Edits {
  starts: number[] = [];
  ends: number[] = [];
  values: (Uint8Array | null)[] = [];
  count = 0;

  add(start: number, end: number, value: Uint8Array | null): void {
    this.starts[this.count] = start;
    this.ends[this.count] = end;
    this.values[this.count] = value;
    this.count++;
  }

  /** Forgets the values: masked bytes are not kept past the row they belong to. */
  clear(): void {
    for (let i = 0; i < this.count; i++) this.values[i] = null;
    this.count = 0;
  }
}

// --- DataRow ----------------------------------------------------------------------------------------------------

const DATA_ROW = 0x44;

/** The column count of a whole DataRow message, checked against the plan's. */
function columnCount(message: Buffer, planned: number): number {
  const size = message.length;
  if (size < 7 || message[0] !== DATA_ROW || readInt32(message, 1) !== size - 1) {
    throw new MaskingError("malformed_message", "not a whole DataRow message");
  }
  const count = (message[5]! << 8) | message[6]!;
  if (count !== planned) {
    throw new MaskingError("plan_mismatch", `a DataRow of ${count} columns for a plan of ${planned}`);
  }
  return count;
}

/** The digest bytes `hash` shows for a string, as hex. */
const HASH_BYTES = 8;

function maskDataRowWith(message: Buffer, compiled: Compiled, hasher: Hasher, masked: number[]): Buffer {
  if (compiled.maxGrowth >= 0) return maskDataRowInPlace(message, compiled, hasher, masked);
  const { cells, fixed, edits } = compiled;
  const size = message.length;
  const count = columnCount(message, cells.length);
  edits.clear();
  let at = 7;
  let grow = 0;
  for (let column = 0; column < count; column++) {
    if (at + 4 > size) throw new MaskingError("malformed_message", "DataRow ends inside a column length");
    const length = readInt32(message, at);
    const start = at;
    at += 4;
    if (length === -1) continue;
    if (length < 0 || at + length > size) throw new MaskingError("malformed_message", "DataRow column overruns it");
    const cell = cells[column];
    if (cell !== undefined) {
      // A masker that ignores the value (redact, null for most types) spares reading the cell at all.
      let replacement = fixed[column];
      if (replacement === undefined) {
        const value = message.subarray(at, at + length);
        replacement = applyCell(cell, value, hasher);
        if (replacement === value) replacement = undefined;
      }
      if (replacement !== undefined) {
        edits.add(start, at + length, replacement);
        grow += (replacement === null ? 0 : replacement.length) - length;
        masked[column]!++;
      }
    }
    at += length;
  }
  if (at !== size) throw new MaskingError("malformed_message", "DataRow has bytes after its last column");
  if (edits.count === 0) return message;
  const out = allocOutput(size + grow);
  let from = 0;
  let to = 0;
  for (let i = 0; i < edits.count; i++) {
    to = copyInto(message, from, edits.starts[i]!, out, to);
    const value = edits.values[i]!;
    if (value === null) {
      to = writeInt32(out, to, -1);
    } else {
      to = writeInt32(out, to, value.length);
      to = copyInto(value, 0, value.length, out, to);
    }
    from = edits.ends[i]!;
  }
  copyInto(message, from, size, out, to);
  writeInt32(out, 1, out.length - 1);
  edits.clear();
  return out;
}

/**
 * One pass for plans whose masked columns are all fixed or written in place. The row is copied into the slab whole
 * (one native copy: a JavaScript loop over bytes costs more than the row's masking), then each masked cell is
 * overwritten where it lies, the rest of the row moved (copyWithin) when the new value's length differs.
 */
function maskDataRowInPlace(message: Buffer, compiled: Compiled, hasher: Hasher, masked: number[]): Buffer {
  const { cells, fixed, inPlace } = compiled;
  const size = message.length;
  const count = columnCount(message, cells.length);
  const out = reserveOutput(size + compiled.maxGrowth);
  const base = slabUsed;
  out.set(message, base);
  let shift = base; // where a byte of the input now lies in `out`: its offset plus shift
  let at = 7;
  let changed = false;
  for (let column = 0; column < count; column++) {
    if (at + 4 > size) throw new MaskingError("malformed_message", "DataRow ends inside a column length");
    const length = readInt32(message, at);
    const start = at;
    at += 4;
    if (length === -1) continue;
    if (length < 0 || at + length > size) throw new MaskingError("malformed_message", "DataRow column overruns it");
    if (cells[column] !== undefined) {
      const end = at + length;
      const replacement = fixed[column];
      const how = inPlace[column];
      // The new value's length, and for partial the start of the input's tail it keeps.
      let tailStart = 0;
      let newLength: number;
      if (replacement !== undefined) {
        newLength = replacement === null ? -1 : replacement.length;
      } else if (how!.strategy === "partial") {
        const valueEnd = how!.trimSpaces ? withoutTrailingSpaces(message, at, end) : end;
        tailStart = partialTail(message, at, valueEnd, how!.keep);
        newLength = STARS.length + valueEnd - tailStart;
      } else {
        newLength = HASH_TEXT_LENGTH;
      }
      const to = start + shift;
      const grow = Math.max(newLength, 0) - length;
      if (grow !== 0) out.copyWithin(end + shift + grow, end + shift, size + shift);
      writeInt32(out, to, newLength);
      if (replacement !== undefined) {
        if (replacement !== null) copyInto(replacement, 0, newLength, out, to + 4);
      } else if (how!.strategy === "partial") {
        copyInto(STARS, 0, STARS.length, out, to + 4);
        copyInto(message, tailStart, tailStart + newLength - STARS.length, out, to + 4 + STARS.length);
      } else {
        const valueEnd = how!.trimSpaces ? withoutTrailingSpaces(message, at, end) : end;
        writeHash(hasher.digest(message.subarray(at, valueEnd)), out, to + 4);
      }
      shift += grow;
      masked[column]!++;
      changed = true;
    }
    at += length;
  }
  if (at !== size) throw new MaskingError("malformed_message", "DataRow has bytes after its last column");
  if (!changed) return message; // every masked column was NULL
  const end = size + shift;
  writeInt32(out, base + 1, end - base - 1);
  slabUsed = end;
  return out.subarray(base, end);
}

function withoutTrailingSpaces(value: Uint8Array, start: number, end: number): number {
  while (end > start && value[end - 1] === 0x20) end--;
  return end;
}

/** Where `partial`'s kept tail of value[start, end) begins: the last `keep` characters, never more than half. */
function partialTail(value: Uint8Array, start: number, end: number, keep: number): number {
  let characters = 0;
  for (let i = start; i < end; i++) if ((value[i]! & 0xc0) !== 0x80) characters++;
  const shown = Math.min(keep, characters >> 1);
  let from = end;
  for (let seen = 0; seen < shown; ) if ((value[--from]! & 0xc0) !== 0x80) seen++;
  return from;
}

const HEX_DIGITS = Buffer.from("0123456789abcdef", "latin1");
const HASH_TEXT_LENGTH = HASH_PREFIX.length + 2 * HASH_BYTES;

/** Writes `hash`'s text (`h:` and the digest's first bytes as hex) at `to`. */
function writeHash(digest: Uint8Array, out: Buffer, to: number): void {
  to = copyInto(HASH_PREFIX, 0, HASH_PREFIX.length, out, to);
  for (let i = 0; i < HASH_BYTES; i++) {
    out[to++] = HEX_DIGITS[digest[i]! >> 4]!;
    out[to++] = HEX_DIGITS[digest[i]! & 15]!;
  }
}

// Masked rows are cut from one slab after another, so the rows of a result lie next to each other in memory and the
// proxy writes a run of them as one buffer instead of one buffer per row. A slab is never reused: it goes when the
// last row cut from it has been written.
const SLAB_SIZE = 64 * 1024;
let slab = Buffer.allocUnsafeSlow(0);
let slabUsed = 0;

/**
 * Makes room for a row of at most `size` bytes at `slabUsed` in the returned slab; the caller moves slabUsed past
 * what it wrote. A row too large for slabs gets a buffer of its own, which then counts as the slab.
 */
function reserveOutput(size: number): Buffer {
  if (size > SLAB_SIZE / 4) {
    slab = Buffer.allocUnsafeSlow(size);
    slabUsed = 0;
  } else if (slabUsed + size > slab.length) {
    slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
    slabUsed = 0;
  }
  return slab;
}

function allocOutput(size: number): Buffer {
  if (size > SLAB_SIZE / 4) return Buffer.allocUnsafeSlow(size);
  if (slabUsed + size > slab.length) {
    slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
    slabUsed = 0;
  }
  const out = slab.subarray(slabUsed, slabUsed + size);
  slabUsed += size;
  return out;
}

/** Copies source[from, end) to target at `to` and returns the offset after it; a loop beats a native call for short spans. */
function copyInto(source: Uint8Array, from: number, end: number, target: Buffer, to: number): number {
  const length = end - from;
  if (length > 64) {
    target.set(source.subarray(from, end), to);
    return to + length;
  }
  for (let i = 0; i < length; i++) target[to + i] = source[from + i]!;
  return to + length;
}

function writeInt32(target: Uint8Array, at: number, value: number): number {
  target[at] = value >>> 24;
  target[at + 1] = (value >>> 16) & 0xff;
  target[at + 2] = (value >>> 8) & 0xff;
  target[at + 3] = value & 0xff;
  return at + 4;
}

/** A value that cannot be read as its announced type (a short int4, say) is a malformed row, not a crash. */
function applyCell(cell: CellMasker, value: Uint8Array, hasher: Hasher): Uint8Array | null {
  try {
    return cell(value, hasher);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    throw new MaskingError("malformed_message", `a column value is not of its type: ${error.message}`, {
      cause: error,
    });
  }
}

function readInt32(bytes: Uint8Array, at: number): number {
  return (bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!;
}

// --- COPY text --------------------------------------------------------------------------------------------------

const BACKSLASH = 0x5c;
const NEWLINE = 0x0a;

/**
 * COPY text format: fields split by the delimiter, a backslash escaping the next character (`\t`, `\n`, `\\`, the
 * delimiter, octal `\123`, hex `\x1f`), and the NULL string written as it is. The server ends each row with a
 * newline (in every CopyData message of its own). Assumes an ASCII-safe client encoding such as UTF8: in SJIS or
 * BIG5 a backslash byte can be half of a character.
 */
function maskCopyTextRowWith(
  line: Buffer,
  compiled: Compiled,
  hasher: Hasher,
  masked: number[],
  options: CopyTextOptions = {},
): Buffer {
  const cells = compiled.copy();
  const { edits } = compiled;
  const delimiter = singleByte(options.delimiter ?? "\t", "delimiter");
  const nullString = Buffer.from(options.null ?? "\\N", "utf8");
  const end = line.length > 0 && line[line.length - 1] === NEWLINE ? line.length - 1 : line.length;
  edits.clear();
  let grow = 0;
  let column = 0;
  let start = 0;
  for (let at = 0; at <= end; at++) {
    const byte = at < end ? line[at] : delimiter;
    if (byte === BACKSLASH && at < end) {
      at++;
      continue;
    }
    if (byte !== delimiter) continue;
    if (column >= cells.length)
      throw new MaskingError("plan_mismatch", `a COPY row of more than ${cells.length} columns`);
    const cell = cells[column];
    if (cell !== undefined) {
      const raw = line.subarray(start, at);
      if (!raw.equals(nullString)) {
        const value = unescapeCopyText(raw);
        const replacement = applyCell(cell, value, hasher);
        if (replacement !== value) {
          const written = replacement === null ? nullString : escapeCopyText(replacement, delimiter);
          edits.add(start, at, written);
          grow += written.length - raw.length;
          masked[column]!++;
        }
      }
    }
    column++;
    start = at + 1;
  }
  if (column !== cells.length) {
    throw new MaskingError("plan_mismatch", `a COPY row of ${column} columns for a plan of ${cells.length}`);
  }
  return applyEdits(line, edits, grow);
}

function applyEdits(line: Buffer, edits: Edits, grow: number): Buffer {
  if (edits.count === 0) return line;
  const out = Buffer.allocUnsafe(line.length + grow);
  let from = 0;
  let to = 0;
  for (let i = 0; i < edits.count; i++) {
    to += line.copy(out, to, from, edits.starts[i]!);
    out.set(edits.values[i]!, to);
    to += edits.values[i]!.length;
    from = edits.ends[i]!;
  }
  line.copy(out, to, from);
  edits.clear();
  return out;
}

const UNESCAPE: Readonly<Record<number, number>> = { 98: 8, 102: 12, 110: 10, 114: 13, 116: 9, 118: 11 };

/** The value of a COPY text field (its escapes undone), in the type's text output form. */
export function unescapeCopyText(raw: Uint8Array): Uint8Array {
  if (!raw.includes(BACKSLASH)) return raw;
  const out: number[] = [];
  for (let i = 0; i < raw.length; i++) {
    const byte = raw[i]!;
    if (byte !== BACKSLASH || i + 1 >= raw.length) {
      out.push(byte);
      continue;
    }
    const next = raw[++i]!;
    if (next >= 0x30 && next <= 0x37) {
      let value = next - 0x30;
      for (let n = 1; n < 3 && i + 1 < raw.length && raw[i + 1]! >= 0x30 && raw[i + 1]! <= 0x37; n++) {
        value = value * 8 + raw[++i]! - 0x30;
      }
      out.push(value & 0xff);
    } else if (next === 0x78 && i + 1 < raw.length && isHex(raw[i + 1]!)) {
      let value = hexValue(raw[++i]!);
      if (i + 1 < raw.length && isHex(raw[i + 1]!)) value = value * 16 + hexValue(raw[++i]!);
      out.push(value);
    } else out.push(UNESCAPE[next] ?? next);
  }
  return Uint8Array.from(out);
}

const ESCAPE: Readonly<Record<number, number>> = { 8: 98, 12: 102, 10: 110, 13: 114, 9: 116, 11: 118, 92: 92 };

/** A value written as COPY text writes it: backslash, control characters and the delimiter escaped. */
export function escapeCopyText(value: Uint8Array, delimiter: number): Buffer {
  let extra = 0;
  for (const byte of value) if (ESCAPE[byte] !== undefined || byte === delimiter) extra++;
  const out = Buffer.allocUnsafe(value.length + extra);
  let to = 0;
  for (const byte of value) {
    const escaped = ESCAPE[byte];
    if (escaped !== undefined) {
      out[to++] = BACKSLASH;
      out[to++] = escaped;
    } else if (byte === delimiter) {
      out[to++] = BACKSLASH;
      out[to++] = byte;
    } else out[to++] = byte;
  }
  return out;
}

function isHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);
}

function hexValue(c: number): number {
  return c <= 57 ? c - 48 : (c | 0x20) - 87;
}

function singleByte(text: string, what: string): number {
  if (text.length !== 1 || text.charCodeAt(0) > 127) {
    throw new MaskingError("malformed_message", `COPY ${what} must be one single-byte character`);
  }
  return text.charCodeAt(0);
}

// --- COPY CSV ---------------------------------------------------------------------------------------------------

/**
 * COPY CSV format: a field is quoted (quote ... quote, the escape character before a quote or itself inside) or
 * unquoted; an unquoted field equal to the NULL string is NULL; quoted fields may hold delimiters and newlines.
 * A masked value is always written quoted, so it can never read back as NULL; the NULL strategy writes the NULL
 * string unquoted. The header row of `HEADER` output must not be passed here (it holds column names).
 */
function maskCopyCsvRowWith(
  line: Buffer,
  compiled: Compiled,
  hasher: Hasher,
  masked: number[],
  options: CopyCsvOptions = {},
): Buffer {
  const cells = compiled.copy();
  const delimiter = singleByte(options.delimiter ?? ",", "delimiter");
  const quote = singleByte(options.quote ?? '"', "quote");
  const escapeChar = singleByte(options.escape ?? options.quote ?? '"', "escape");
  const nullString = Buffer.from(options.null ?? "", "utf8");
  const end = line.length > 0 && line[line.length - 1] === NEWLINE ? line.length - 1 : line.length;
  const pieces: Uint8Array[] = [];
  let copied = 0;
  let changed = false;
  let column = 0;
  let at = 0;
  for (;;) {
    const start = at;
    let value: Uint8Array;
    let quoted = false;
    if (at < end && line[at] === quote) {
      quoted = true;
      const bytes: number[] = [];
      at++;
      for (;;) {
        if (at >= end) throw new MaskingError("malformed_message", "COPY CSV row ends inside a quoted field");
        const byte = line[at]!;
        if (byte === escapeChar && at + 1 < end && (line[at + 1] === quote || line[at + 1] === escapeChar)) {
          // With ESCAPE the same as QUOTE, a doubled quote is one quote; a lone quote closes the field.
          if (escapeChar !== quote || line[at + 1] === quote) {
            bytes.push(line[at + 1]!);
            at += 2;
            continue;
          }
        }
        if (byte === quote) {
          at++;
          break;
        }
        bytes.push(byte);
        at++;
      }
      value = Uint8Array.from(bytes);
      if (at < end && line[at] !== delimiter) {
        throw new MaskingError("malformed_message", "COPY CSV quoted field followed by more than a delimiter");
      }
    } else {
      while (at < end && line[at] !== delimiter) at++;
      value = line.subarray(start, at);
    }
    if (column >= cells.length)
      throw new MaskingError("plan_mismatch", `a COPY row of more than ${cells.length} columns`);
    const cell = cells[column];
    const isNull = !quoted && nullString.equals(value);
    if (cell !== undefined && !isNull) {
      const replacement = applyCell(cell, value, hasher);
      if (replacement !== value) {
        pieces.push(line.subarray(copied, start));
        pieces.push(replacement === null ? nullString : quoteCsv(replacement, quote, escapeChar));
        copied = at;
        changed = true;
        masked[column]!++;
      }
    }
    column++;
    if (at >= end) break;
    at++; // the delimiter
  }
  if (column !== cells.length) {
    throw new MaskingError("plan_mismatch", `a COPY row of ${column} columns for a plan of ${cells.length}`);
  }
  if (!changed) return line;
  pieces.push(line.subarray(copied));
  return Buffer.concat(pieces);
}

function quoteCsv(value: Uint8Array, quote: number, escapeChar: number): Buffer {
  const bytes: number[] = [quote];
  for (const byte of value) {
    if (byte === quote || byte === escapeChar) bytes.push(escapeChar);
    bytes.push(byte);
  }
  bytes.push(quote);
  return Buffer.from(bytes);
}
