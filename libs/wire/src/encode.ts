import { Backend } from "./codes.ts";

/** Fields of an ErrorResponse or NoticeResponse the gateway writes itself. */
export interface ErrorFields {
  severity: "ERROR" | "FATAL" | "PANIC" | "WARNING" | "NOTICE" | "DEBUG" | "INFO" | "LOG";
  /** SQLSTATE, five characters. */
  code: string;
  message: string;
  detail?: string | undefined;
  hint?: string | undefined;
}

function message(type: number, bodyLength: number): Buffer {
  const buf = Buffer.allocUnsafe(5 + bodyLength);
  buf[0] = type;
  buf.writeInt32BE(4 + bodyLength, 1);
  return buf;
}

export function authenticationOk(): Buffer {
  const buf = message(Backend.Authentication, 4);
  buf.writeInt32BE(0, 5);
  return buf;
}

/** AuthenticationCleartextPassword: asks the client for its password (here: its token). */
export function authenticationCleartextPassword(): Buffer {
  const buf = message(Backend.Authentication, 4);
  buf.writeInt32BE(3, 5);
  return buf;
}

export function parameterStatus(name: string, value: string): Buffer {
  const n = Buffer.byteLength(name);
  const v = Buffer.byteLength(value);
  const buf = message(Backend.ParameterStatus, n + v + 2);
  buf.write(name, 5);
  buf[5 + n] = 0;
  buf.write(value, 6 + n);
  buf[6 + n + v] = 0;
  return buf;
}

export function backendKeyData(processId: number, secretKey: number): Buffer {
  const buf = message(Backend.BackendKeyData, 8);
  buf.writeInt32BE(processId, 5);
  buf.writeInt32BE(secretKey, 9);
  return buf;
}

/** @param status 'I' idle, 'T' in a transaction block, 'E' in a failed transaction block. */
export function readyForQuery(status: "I" | "T" | "E"): Buffer {
  const buf = message(Backend.ReadyForQuery, 1);
  buf[5] = status.charCodeAt(0);
  return buf;
}

/** NegotiateProtocolVersion: the newest minor version we speak and the protocol options we did not recognise. */
export function negotiateProtocolVersion(minor: number, unrecognised: readonly string[]): Buffer {
  const names = unrecognised.map((o) => Buffer.from(`${o}\0`));
  const size = names.reduce((sum, b) => sum + b.length, 8);
  const buf = message(Backend.NegotiateProtocolVersion, size);
  buf.writeInt32BE((3 << 16) | minor, 5);
  buf.writeInt32BE(names.length, 9);
  let offset = 13;
  for (const name of names) offset += name.copy(buf, offset);
  return buf;
}

export function errorResponse(fields: ErrorFields): Buffer {
  return noticeOrError(Backend.ErrorResponse, fields);
}

export function noticeResponse(fields: ErrorFields): Buffer {
  return noticeOrError(Backend.NoticeResponse, fields);
}

function noticeOrError(type: number, f: ErrorFields): Buffer {
  const parts: [string, string][] = [
    ["S", f.severity],
    ["V", f.severity],
    ["C", f.code],
    ["M", f.message],
  ];
  if (f.detail !== undefined) parts.push(["D", f.detail]);
  if (f.hint !== undefined) parts.push(["H", f.hint]);
  const encoded = parts.map(([k, v]) => Buffer.from(`${k}${v.replaceAll("\0", "")}\0`));
  const size = encoded.reduce((sum, b) => sum + b.length, 1);
  const buf = message(type, size);
  let offset = 5;
  for (const part of encoded) offset += part.copy(buf, offset);
  buf[offset] = 0;
  return buf;
}
