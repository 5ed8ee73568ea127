import type { Socket } from "node:net";
import { ProtocolError } from "@agentgate/wire";
import { GatewayError } from "../errors.ts";

/**
 * Ends our side of a socket (after `last`, if given) unless it is already ended, and keeps reading so the peer's
 * close is seen; whatever still arrives is dropped by the data handlers, which only act while relaying.
 */
export function endSocket(socket: Socket, last?: Buffer): void {
  if (!socket.writableEnded && !socket.destroyed) {
    if (last === undefined) socket.end();
    else socket.end(last);
  }
  socket.resume();
}

/** Writes the parts in one corked batch; false when the socket's buffer is full (the caller pauses the other side). */
export function writeAll(socket: Socket, parts: Buffer[]): boolean {
  if (parts.length === 1) return socket.write(parts[0]!);
  socket.cork();
  let ok = true;
  for (const part of parts) ok = socket.write(part);
  socket.uncork();
  return ok;
}

export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  return address === "::1" || address.startsWith("127.") || address.startsWith("::ffff:127.");
}

export function shuttingDown(): GatewayError {
  return new GatewayError("57P01", "terminating connection because the gateway is shutting down");
}

/** What a failure says on the wire: its own SQLSTATE when it has one, else the gateway's internal error. */
export function asGatewayError(error: unknown): GatewayError {
  if (error instanceof GatewayError) return error;
  if (error instanceof ProtocolError) return new GatewayError(error.code, error.message, { cause: error });
  return new GatewayError("XX000", "internal gateway error", { cause: error });
}
