// The few protocol messages masking reads or writes beyond what relaying needs.
import { Frontend } from "@agentgate/wire";

/** One column of a RowDescription. */
export interface Field {
  name: string;
  /** The table the column is a plain reference to, else 0; with attnum, its provenance. */
  tableOid: number;
  attnum: number;
  typeOid: number;
  /** 0 text, 1 binary. */
  format: number;
}

/** RowDescription: int16 count, then per field name\0, int32 table, int16 attnum, int32 type, int16 len, int32 mod, int16 format. */
export function rowDescriptionFields(message: Buffer): Field[] {
  const count = message.readInt16BE(5);
  const fields: Field[] = [];
  let offset = 7;
  for (let i = 0; i < count; i++) {
    const end = message.indexOf(0, offset);
    if (end < 0 || end + 19 > message.length) throw new RangeError("RowDescription field out of bounds");
    fields.push({
      name: message.toString("utf8", offset, end),
      tableOid: message.readUInt32BE(end + 1),
      attnum: message.readInt16BE(end + 5),
      typeOid: message.readUInt32BE(end + 7),
      format: message.readInt16BE(end + 17),
    });
    offset = end + 19;
  }
  return fields;
}

/** Bind's result-column format codes (after portal, statement, parameter formats and values); `offset` is past the statement name. */
export function bindResultFormats(message: Buffer, offset: number): number[] {
  let at = offset;
  const parameterFormats = message.readInt16BE(at);
  at += 2 + 2 * parameterFormats;
  const parameters = message.readInt16BE(at);
  at += 2;
  for (let i = 0; i < parameters; i++) {
    const length = message.readInt32BE(at);
    at += 4 + Math.max(length, 0);
  }
  const count = message.readInt16BE(at);
  at += 2;
  const formats: number[] = [];
  for (let i = 0; i < count; i++) formats.push(message.readInt16BE(at + 2 * i));
  return formats;
}

/** Describe of a statement ("S") or portal ("P"). */
export function describeMessage(kind: "S" | "P", name: string): Buffer {
  const nameBytes = Buffer.from(name, "utf8");
  const out = Buffer.alloc(1 + 4 + 1 + nameBytes.length + 1);
  out[0] = Frontend.Describe;
  out.writeUInt32BE(out.length - 1, 1);
  out[5] = kind.charCodeAt(0);
  nameBytes.copy(out, 6);
  return out;
}

/**
 * Rewrites the text fields of an ErrorResponse or NoticeResponse: `edit` gets each field's code and text and returns
 * the new text, or undefined to drop the field. Returns the message itself when nothing changed.
 */
export function rebuildNoticeFields(message: Buffer, edit: (code: number, text: string) => string | undefined): Buffer {
  const parts: Buffer[] = [];
  let changed = false;
  let offset = 5;
  while (offset < message.length && message[offset] !== 0) {
    const code = message[offset]!;
    const end = message.indexOf(0, offset + 1);
    if (end < 0) break;
    const text = message.toString("utf8", offset + 1, end);
    const edited = edit(code, text);
    if (edited === undefined) changed = true;
    else {
      if (edited !== text) changed = true;
      parts.push(Buffer.from([code]), Buffer.from(edited, "utf8"), Buffer.from([0]));
    }
    offset = end + 1;
  }
  if (!changed) return message;
  const body = Buffer.concat([...parts, Buffer.from([0])]);
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = message[0]!;
  out.writeUInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}
