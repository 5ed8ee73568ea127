import { randomInt } from "node:crypto";
import { connect } from "node:net";
import type { Target } from "@agentgate/config";
import { serialize } from "pg-protocol";

/** The cancel key a client holds for its session: the gateway's own, never the upstream server's. */
export interface CancelKey {
  processId: number;
  secretKey: number;
}

/** Where a client's cancel key leads: the upstream backend to cancel. */
export interface CancelTarget {
  target: Target;
  processId: number;
  secretKey: number;
}

/** Maps the keys handed to clients to upstream backends, so a CancelRequest reaches the right server process. */
export class CancelRegistry {
  readonly #entries = new Map<string, () => CancelTarget | undefined>();

  /** Issues a fresh key for a session; `resolve` says where a cancel should go at the moment it arrives. */
  issue(resolve: () => CancelTarget | undefined): CancelKey {
    for (;;) {
      const key = { processId: randomInt(1, 2 ** 31 - 1), secretKey: randomInt(-(2 ** 31), 2 ** 31 - 1) };
      const id = keyId(key);
      if (!this.#entries.has(id)) {
        this.#entries.set(id, resolve);
        return key;
      }
    }
  }

  revoke(key: CancelKey): void {
    this.#entries.delete(keyId(key));
  }

  lookup(processId: number, secretKey: Buffer): CancelTarget | undefined {
    if (secretKey.length !== 4) return undefined;
    return this.#entries.get(keyId({ processId, secretKey: secretKey.readInt32BE(0) }))?.();
  }
}

function keyId(key: CancelKey): string {
  return `${key.processId}:${key.secretKey}`;
}

/** Sends a CancelRequest to the upstream server over a new connection, as PostgreSQL expects; resolves when sent. */
export function sendCancel(to: CancelTarget, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: to.target.host, port: to.target.port });
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error("cancel request timed out")));
    socket.once("connect", () => socket.end(serialize.cancel(to.processId, to.secretKey)));
    socket.once("error", reject);
    socket.once("close", () => resolve());
    socket.resume();
  });
}
