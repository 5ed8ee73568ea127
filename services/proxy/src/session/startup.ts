// The startup phase's checks, as pure functions of what the client sent: the startup message's parameters and the
// PasswordMessage that carries the token.
import { PROTECTED_SETTINGS } from "@agentgate/sql";
import { describeType, Frontend, ProtocolError } from "@agentgate/wire";
import { GatewayError } from "../errors.ts";

/** A JWT is a few kilobytes; PostgreSQL itself caps password packets at 1000 bytes, tokens need more. */
const MAX_PASSWORD_MESSAGE = 64 * 1024;

/**
 * The user name of a startup message the gateway accepts; throws the refusal otherwise: no user name (28000), a
 * replication connection (0A000), a protected setting (42501).
 */
export function startupUser(parameters: ReadonlyMap<string, string>): string {
  const user = parameters.get("user");
  if (user === undefined || user === "") {
    throw new GatewayError("28000", "no PostgreSQL user name specified in startup packet");
  }
  const replication = parameters.get("replication");
  if (replication !== undefined && !["false", "off", "no", "0"].includes(replication.toLowerCase())) {
    throw new GatewayError("0A000", "replication connections are not supported through the gateway");
  }
  const protectedParameter = protectedStartupSetting(parameters);
  if (protectedParameter !== undefined) {
    throw new GatewayError("42501", `permission denied to set ${protectedParameter} at connection start`);
  }
  return user;
}

/**
 * A protected setting in the startup packet, directly or through `options` (-c name=value / --name=value): the
 * role, the session authorization and read-only mode are the gateway's to decide, never the client's.
 */
export function protectedStartupSetting(parameters: ReadonlyMap<string, string>): string | undefined {
  for (const [name, value] of parameters) {
    const key = name.toLowerCase();
    if (PROTECTED_SETTINGS.has(key)) return key;
    if (key === "options") {
      for (const m of value.matchAll(/(?:-c\s*|--)([A-Za-z_.]+)\s*=/g)) {
        const option = m[1]!.toLowerCase().replaceAll("-", "_");
        if (PROTECTED_SETTINGS.has(option)) return option;
      }
    }
  }
  return undefined;
}

/**
 * The token in a PasswordMessage at the start of `bytes`, and what follows it; undefined while the message is
 * incomplete. A message of another type, of a length out of bounds or without its terminator is a ProtocolError.
 */
export function readPasswordMessage(bytes: Buffer): { token: string; rest: Buffer } | undefined {
  if (bytes.length < 5) return undefined;
  if (bytes[0] !== Frontend.Password) {
    throw new ProtocolError(`expected a password message, got message type ${describeType(bytes[0]!)}`);
  }
  const size = bytes.readInt32BE(1) + 1;
  if (size < 6 || size > MAX_PASSWORD_MESSAGE) throw new ProtocolError("invalid password message length");
  if (bytes.length < size) return undefined;
  if (bytes[size - 1] !== 0) throw new ProtocolError("invalid password message: no terminator");
  return { token: bytes.toString("utf8", 5, size - 1), rest: bytes.subarray(size) };
}
