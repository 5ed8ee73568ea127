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

/** Close: 'S' statement or 'P' portal, and its name. */
export function closeTarget(message: Buffer): { kind: "S" | "P"; name: string } {
  return { kind: message[5] === 0x53 ? "S" : "P", name: message.toString("utf8", 6, stringEnd(message, 6, "Close")) };
}
