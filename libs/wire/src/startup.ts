import { MAX_STARTUP_PACKET_LENGTH, RequestCode } from "./codes.ts";
import { ProtocolError } from "./errors.ts";

/** What a client asked for in an untyped startup-phase packet. */
export type StartupPacket =
  | { kind: "ssl" }
  | { kind: "gssenc" }
  | { kind: "cancel"; processId: number; secretKey: Buffer }
  | {
      kind: "startup";
      major: number;
      minor: number;
      /** Parameters in the order the client sent them, protocol options (`_pq_.*`) excluded. */
      parameters: Map<string, string>;
      /** Names of the `_pq_.*` protocol options the client asked for. */
      protocolOptions: string[];
    };

/**
 * Returns the size of the first whole startup packet in `data`, or 0 when more bytes are needed.
 * Throws ProtocolError when the length word is impossible, as PostgreSQL does ("invalid length of startup packet").
 */
export function startupPacketSize(data: Buffer): number {
  if (data.length < 4) return 0;
  const length = data.readInt32BE(0);
  if (length < 8 || length > MAX_STARTUP_PACKET_LENGTH) {
    throw new ProtocolError("invalid length of startup packet");
  }
  return data.length >= length ? length : 0;
}

/** Decodes one whole startup packet (length word included). */
export function parseStartupPacket(packet: Buffer): StartupPacket {
  const code = packet.readInt32BE(4);
  switch (code) {
    case RequestCode.SSL:
      if (packet.length !== 8) throw new ProtocolError("invalid length of SSL request packet");
      return { kind: "ssl" };
    case RequestCode.GSSENC:
      if (packet.length !== 8) throw new ProtocolError("invalid length of GSSENC request packet");
      return { kind: "gssenc" };
    case RequestCode.Cancel:
      if (packet.length < 16 || packet.length > 12 + 256) throw new ProtocolError("invalid length of cancel request");
      return { kind: "cancel", processId: packet.readInt32BE(8), secretKey: Buffer.from(packet.subarray(12)) };
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major !== 3) {
    throw new ProtocolError(`unsupported frontend protocol ${major}.${minor}: server supports 3.0 to 3.0`, "0A000");
  }
  return { kind: "startup", major, minor, ...parseParameters(packet.subarray(8)) };
}

function parseParameters(body: Buffer): { parameters: Map<string, string>; protocolOptions: string[] } {
  const parameters = new Map<string, string>();
  const protocolOptions: string[] = [];
  let offset = 0;
  for (;;) {
    const keyEnd = body.indexOf(0, offset);
    if (keyEnd < 0) throw new ProtocolError("invalid startup packet layout: expected terminator as last byte");
    if (keyEnd === offset) {
      if (keyEnd !== body.length - 1) throw new ProtocolError("invalid startup packet layout: data after terminator");
      break;
    }
    const key = body.toString("utf8", offset, keyEnd);
    const valueEnd = body.indexOf(0, keyEnd + 1);
    if (valueEnd < 0) throw new ProtocolError(`invalid startup packet layout: parameter "${key}" has no value`);
    const value = body.toString("utf8", keyEnd + 1, valueEnd);
    if (key.startsWith("_pq_.")) protocolOptions.push(key);
    else parameters.set(key, value);
    offset = valueEnd + 1;
  }
  return { parameters, protocolOptions };
}
