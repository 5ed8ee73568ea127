import { ProtocolError } from "@agentgate/wire";

/** Readers for the fields of the frontend messages the gateway decides on; a malformed one is a ProtocolError. */

function stringEnd(message: Buffer, from: number, what: string): number {
  const end = message.indexOf(0, from);
  if (end < 0 || end >= message.length) throw new ProtocolError(`invalid ${what} message: unterminated string`);
  return end;
}

/** Query: the SQL text. */
export function queryText(message: Buffer): string {
  return message.toString("utf8", 5, stringEnd(message, 5, "Query"));
}

/** Parse: the statement name and its SQL text. */
export function parseFields(message: Buffer): { name: string; text: string } {
  const nameEnd = stringEnd(message, 5, "Parse");
  const textEnd = stringEnd(message, nameEnd + 1, "Parse");
  return { name: message.toString("utf8", 5, nameEnd), text: message.toString("utf8", nameEnd + 1, textEnd) };
}

/** Bind: the prepared statement it binds. */
export function bindStatement(message: Buffer): string {
  const portalEnd = stringEnd(message, 5, "Bind");
  const statementEnd = stringEnd(message, portalEnd + 1, "Bind");
  return message.toString("utf8", portalEnd + 1, statementEnd);
}

/** Bind: the portal it creates and the prepared statement it binds. */
export function bindPortalAndStatement(message: Buffer): { portal: string; statement: string } {
  const portalEnd = stringEnd(message, 5, "Bind");
  const statementEnd = stringEnd(message, portalEnd + 1, "Bind");
  return {
    portal: message.toString("utf8", 5, portalEnd),
    statement: message.toString("utf8", portalEnd + 1, statementEnd),
  };
}

/** Execute: the portal it runs. */
export function executePortal(message: Buffer): string {
  return message.toString("utf8", 5, stringEnd(message, 5, "Execute"));
}

/** The same Parse (name, parameter types) with another SQL text. */
export function withParseText(message: Buffer, text: string): Buffer {
  const nameEnd = stringEnd(message, 5, "Parse");
  const textEnd = stringEnd(message, nameEnd + 1, "Parse");
  const name = message.subarray(5, nameEnd + 1);
  const sql = Buffer.from(`${text}\0`, "utf8");
  const rest = message.subarray(textEnd + 1);
  const out = Buffer.allocUnsafe(5 + name.length + sql.length + rest.length);
  out[0] = message[0]!;
  out.writeInt32BE(out.length - 1, 1);
  name.copy(out, 5);
  sql.copy(out, 5 + name.length);
  rest.copy(out, 5 + name.length + sql.length);
  return out;
}

/** Close: 'S' statement or 'P' portal, and its name. */
export function closeTarget(message: Buffer): { kind: "S" | "P"; name: string } {
  return { kind: message[5] === 0x53 ? "S" : "P", name: message.toString("utf8", 6, stringEnd(message, 6, "Close")) };
}

/**
 * Bind: the parameter values as the audit records them: text as sent, binary as "base64:…", NULL as "NULL".
 * A Bind too short for what it declares is a ProtocolError.
 */
export function bindParameters(message: Buffer): string[] {
  const portalEnd = stringEnd(message, 5, "Bind");
  let offset = stringEnd(message, portalEnd + 1, "Bind") + 1;
  const need = (n: number) => {
    if (offset + n > message.length) throw new ProtocolError("invalid Bind message: truncated");
  };
  need(2);
  const formatCount = message.readInt16BE(offset);
  offset += 2;
  need(formatCount * 2);
  const formats: number[] = [];
  for (let i = 0; i < formatCount; i++) formats.push(message.readInt16BE(offset + i * 2));
  offset += formatCount * 2;
  need(2);
  const count = message.readInt16BE(offset);
  offset += 2;
  const values: string[] = [];
  for (let i = 0; i < count; i++) {
    need(4);
    const length = message.readInt32BE(offset);
    offset += 4;
    if (length < 0) {
      values.push("NULL");
      continue;
    }
    need(length);
    const binary = (formats.length === 1 ? formats[0] : formats[i]) === 1;
    const value = message.subarray(offset, offset + length);
    values.push(binary ? `base64:${value.toString("base64")}` : value.toString("utf8"));
    offset += length;
  }
  return values;
}
