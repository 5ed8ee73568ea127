import { randomUUID } from "node:crypto";
import type { Socket } from "node:net";
import { type SecureContext, TLSSocket } from "node:tls";
import type { ProxyConfig, Target } from "@agentgate/config";
import {
  authenticationOk,
  Backend,
  backendKeyData,
  describeType,
  FRONTEND_TYPES,
  Frontend,
  MessageFramer,
  negotiateProtocolVersion,
  ProtocolError,
  parseStartupPacket,
  readyForQuery,
  type StartupPacket,
  startupPacketSize,
  WriteBatch,
} from "@agentgate/wire";
import type { Logger } from "pino";
import { type CancelKey, type CancelRegistry, sendCancel } from "./cancel.ts";
import { GatewayError } from "./errors.ts";
import { connectUpstream, type UpstreamConnection } from "./upstream.ts";

/** What every session of one proxy shares. */
export interface SessionContext {
  readonly config: ProxyConfig;
  readonly targets: ReadonlyMap<string, Target>;
  readonly logger: Logger;
  readonly tls: SecureContext | undefined;
  readonly cancels: CancelRegistry;
  /** Aborted when the proxy shuts down. */
  readonly shutdown: AbortSignal;
}

type Phase = "startup" | "connecting" | "relay" | "closed";
type EndReason = "client_closed" | "upstream_closed" | "protocol_error" | "shutdown" | "idle_timeout" | "refused";

const SSL_YES = Buffer.from("S");
const SSL_NO = Buffer.from("N");
const TERMINATE = Buffer.from([Frontend.Terminate, 0, 0, 0, 4]);
const FATAL_MARK = Buffer.from("SFATAL\0");
const PARAMETERS_NOT_FORWARDED = new Set(["user", "database", "replication"]);

/**
 * One client connection: the startup handshake, the upstream connection it opens, and the relay of messages both
 * ways. Messages are framed in both directions and forwarded as views of the chunks they arrived in.
 */
export class ClientSession {
  readonly id = randomUUID();
  readonly #ctx: SessionContext;
  #client: Socket;
  #log: Logger;
  #phase: Phase = "startup";
  #startupBytes: Buffer = Buffer.alloc(0);
  // Like PostgreSQL, one SSLRequest and one GSSENCRequest at most (libpq may try GSS, then SSL).
  #sslNegotiated = false;
  #gssNegotiated = false;
  #startupTimer: NodeJS.Timeout | undefined;
  /** Fires when the client has been silent with nothing running for idleSessionTimeoutMs; refreshed on activity. */
  #idleTimer: NodeJS.Timeout | undefined;
  #connecting: AbortController | undefined;
  #upstream: UpstreamConnection | undefined;
  #target: Target | undefined;
  #cancelKey: CancelKey | undefined;
  #clientFramer: MessageFramer;
  #toUpstream = new WriteBatch();
  #toClient = new WriteBatch();
  /** Queries and Syncs sent upstream that have not had their ReadyForQuery yet. */
  #pendingSyncs = 0;
  #transactionStatus = 0x49; // 'I'
  #clientTerminated = false;
  #upstreamSentFatal = false;
  #draining = false;
  #endReason: EndReason | undefined;
  #startedAt = Date.now();
  #finished = false;
  #closed: Promise<void>;
  #resolveClosed!: () => void;

  constructor(client: Socket, ctx: SessionContext) {
    this.#ctx = ctx;
    this.#client = client;
    this.#clientFramer = new MessageFramer(ctx.config.maxMessageSize);
    this.#log = ctx.logger.child({ session: this.id, client: `${client.remoteAddress}:${client.remotePort}` });
    this.#closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  /** Resolves once both connections are closed. */
  get closed(): Promise<void> {
    return this.#closed;
  }

  start(): void {
    this.#startupTimer = setTimeout(() => {
      this.#refuse(
        new GatewayError("08006", `startup did not complete within ${this.#ctx.config.startupTimeoutMs} ms`),
        "refused",
      );
    }, this.#ctx.config.startupTimeoutMs);
    this.#attachClient(this.#client);
  }

  /** Asks the session to end once it is idle; sessions in the middle of a query or transaction finish first. */
  drain(): void {
    this.#draining = true;
    if (this.#phase === "startup") this.#refuse(shuttingDown(), "shutdown");
    else if (this.#phase === "connecting") this.#connecting?.abort();
    else if (this.#phase === "relay") this.#endIfIdle();
  }

  /** Ends the session now, whatever it is doing: an error for the client if it can still take one. */
  terminate(): void {
    if (this.#phase === "relay") this.#goodbye(shuttingDown(), "shutdown");
    else this.drain();
  }

  /** Drops both connections without a word; for peers that do not close after `terminate`. */
  destroy(): void {
    this.#phase = "closed";
    this.#client.destroy();
    this.#upstream?.socket.destroy();
  }

  #attachClient(socket: Socket): void {
    this.#client = socket;
    socket.on("data", this.#onClientData);
    socket.on("error", this.#onClientError);
    socket.on("close", this.#onClientClose);
    socket.on("drain", this.#onClientDrain);
  }

  #detachClient(socket: Socket): void {
    socket.off("data", this.#onClientData);
    socket.off("error", this.#onClientError);
    socket.off("close", this.#onClientClose);
    socket.off("drain", this.#onClientDrain);
  }

  // ---- startup -------------------------------------------------------------------------------------------------

  #onClientData = (chunk: Buffer): void => {
    if (this.#phase === "closed") return;
    if (this.#phase === "relay") {
      this.#relayFromClient(chunk);
      return;
    }
    if (this.#phase !== "startup") {
      // A client that sends before it was told it may: keep the bytes for the relay, stop reading meanwhile.
      this.#startupBytes = Buffer.concat([this.#startupBytes, chunk]);
      this.#client.pause();
      return;
    }
    this.#startupBytes = this.#startupBytes.length === 0 ? chunk : Buffer.concat([this.#startupBytes, chunk]);
    try {
      for (;;) {
        const size = startupPacketSize(this.#startupBytes);
        if (size === 0) return;
        const packet = parseStartupPacket(this.#startupBytes.subarray(0, size));
        this.#startupBytes = this.#startupBytes.subarray(size);
        if (!this.#onStartupPacket(packet)) return;
      }
    } catch (error) {
      this.#refuse(asGatewayError(error), error instanceof ProtocolError ? "protocol_error" : "refused");
    }
  };

  /** Handles one startup-phase packet; returns whether to keep reading packets from the buffer. */
  #onStartupPacket(packet: StartupPacket): boolean {
    switch (packet.kind) {
      case "ssl":
        if (this.#sslNegotiated) throw new ProtocolError("SSL negotiation was already done on this connection");
        this.#sslNegotiated = true;
        if (this.#startupBytes.length > 0) {
          // Bytes sent after SSLRequest but before the handshake would be injected into the encrypted session.
          throw new ProtocolError("received unencrypted data after SSL request");
        }
        if (this.#ctx.tls === undefined) {
          this.#client.write(SSL_NO);
          return true;
        }
        this.#client.write(SSL_YES);
        this.#upgradeToTls();
        return false;
      case "gssenc":
        if (this.#gssNegotiated) throw new ProtocolError("GSS negotiation was already done on this connection");
        this.#gssNegotiated = true;
        this.#client.write(SSL_NO);
        return true;
      case "cancel":
        this.#forwardCancel(packet.processId, packet.secretKey);
        return false;
      case "startup":
        this.#onStartupMessage(packet);
        return false;
    }
  }

  #upgradeToTls(): void {
    const raw = this.#client;
    this.#detachClient(raw);
    const secure = new TLSSocket(raw, { isServer: true, secureContext: this.#ctx.tls! });
    secure.setNoDelay(true);
    this.#attachClient(secure);
    // A raw-socket close after the upgrade still has to end the session.
    raw.on("error", () => undefined);
  }

  #forwardCancel(processId: number, secretKey: Buffer): void {
    const to = this.#ctx.cancels.lookup(processId, secretKey);
    clearTimeout(this.#startupTimer);
    this.#phase = "closed";
    endSocket(this.#client);
    if (to === undefined) {
      this.#log.info("cancel request with an unknown key ignored");
      return;
    }
    this.#log.info({ target: to.target.name }, "cancel request forwarded");
    sendCancel(to, this.#ctx.config.connectTimeoutMs).catch((error: unknown) =>
      this.#log.warn({ err: error, target: to.target.name }, "cancel request could not be delivered"),
    );
  }

  #onStartupMessage(packet: Extract<StartupPacket, { kind: "startup" }>): void {
    if (packet.minor > 0 || packet.protocolOptions.length > 0) {
      // We speak 3.0 only (3.2's longer cancel keys included): tell the client, which then carries on with 3.0.
      this.#client.write(negotiateProtocolVersion(0, packet.protocolOptions));
    }
    const params = packet.parameters;
    const user = params.get("user");
    if (user === undefined || user === "") {
      throw new GatewayError("28000", "no PostgreSQL user name specified in startup packet");
    }
    const replication = params.get("replication");
    if (replication !== undefined && !["false", "off", "no", "0"].includes(replication.toLowerCase())) {
      throw new GatewayError("0A000", "replication connections are not supported through the gateway");
    }
    if (!isLoopback(this.#client.remoteAddress)) {
      throw new GatewayError(
        "28000",
        "the gateway admits only loopback clients until an identity provider is configured",
      );
    }
    const targetName = params.get("database") || user;
    const target = this.#ctx.targets.get(targetName);
    if (target === undefined) {
      throw new GatewayError("3D000", `target "${targetName}" does not exist`, {
        hint: "Connect with the name of a configured target as the database name.",
      });
    }
    this.#target = target;
    this.#log = this.#log.child({ target: target.name, user });
    const forwarded = new Map<string, string>();
    for (const [k, v] of params) if (!PARAMETERS_NOT_FORWARDED.has(k)) forwarded.set(k, v);
    this.#connect(target, forwarded, params.get("application_name") ?? "");
  }

  #connect(target: Target, parameters: Map<string, string>, applicationName: string): void {
    this.#phase = "connecting";
    this.#client.pause();
    this.#connecting = new AbortController();
    connectUpstream(target, {
      parameters,
      timeoutMs: this.#ctx.config.connectTimeoutMs,
      maxMessageSize: this.#ctx.config.maxMessageSize,
      signal: AbortSignal.any([this.#connecting.signal, this.#ctx.shutdown]),
    }).then(
      (upstream) => this.#onUpstreamReady(upstream, applicationName),
      (error: unknown) => {
        if (this.#phase !== "connecting") return;
        const failure = this.#draining ? shuttingDown() : asGatewayError(error);
        this.#log.warn({ err: error }, "upstream connection failed");
        this.#refuse(failure, this.#draining ? "shutdown" : "refused");
      },
    );
  }

  #onUpstreamReady(upstream: UpstreamConnection, applicationName: string): void {
    if (this.#phase !== "connecting") {
      endSocket(upstream.socket, TERMINATE);
      return;
    }
    clearTimeout(this.#startupTimer);
    this.#upstream = upstream;
    const target = this.#target!;
    this.#cancelKey = this.#ctx.cancels.issue(() =>
      this.#upstream ? { target, processId: upstream.processId, secretKey: upstream.secretKey } : undefined,
    );
    const socket = upstream.socket;
    socket.on("data", this.#onUpstreamData);
    socket.on("error", this.#onUpstreamError);
    socket.on("close", this.#onUpstreamClose);
    socket.on("drain", this.#onUpstreamDrain);

    this.#client.cork();
    this.#client.write(authenticationOk());
    for (const message of upstream.startupMessages) this.#client.write(message);
    this.#client.write(backendKeyData(this.#cancelKey.processId, this.#cancelKey.secretKey));
    this.#client.write(readyForQuery(upstream.status));
    this.#client.uncork();
    this.#phase = "relay";
    if (this.#ctx.config.idleSessionTimeoutMs > 0) {
      this.#idleTimer = setTimeout(this.#onIdle, this.#ctx.config.idleSessionTimeoutMs);
    }
    this.#log.info(
      { applicationName, tls: this.#client instanceof TLSSocket, upstreamPid: upstream.processId },
      "session started",
    );

    for (const message of upstream.leftover) this.#onUpstreamMessage(message[0]!, message);
    this.#flushToClient();
    const early = this.#startupBytes;
    this.#startupBytes = Buffer.alloc(0);
    if (early.length > 0) this.#relayFromClient(early);
    if (this.#draining) this.#endIfIdle();
    if (this.#phase === "relay") {
      this.#client.resume();
      socket.resume();
    }
  }

  // ---- relay ---------------------------------------------------------------------------------------------------

  #relayFromClient(chunk: Buffer): void {
    this.#idleTimer?.refresh();
    try {
      this.#clientFramer.push(chunk, this.#onClientMessage);
    } catch (error) {
      // Forward what was whole before the bad message, then end the session.
      this.#flushToUpstream();
      this.#goodbye(asGatewayError(error), "protocol_error");
      return;
    }
    this.#flushToUpstream();
  }

  #onClientMessage = (type: number, message: Buffer): void => {
    if (this.#clientTerminated) return; // nothing may follow Terminate
    if (!FRONTEND_TYPES.has(type)) {
      throw new ProtocolError(`invalid frontend message type ${describeType(type)}`);
    }
    if (type === Frontend.Query || type === Frontend.Sync || type === Frontend.FunctionCall) this.#pendingSyncs++;
    else if (type === Frontend.Terminate) this.#clientTerminated = true;
    this.#toUpstream.add(message);
  };

  #onUpstreamData = (chunk: Buffer): void => {
    if (this.#phase !== "relay") return;
    try {
      this.#upstream!.framer.push(chunk, this.#onUpstreamMessage);
    } catch (error) {
      this.#flushToClient();
      this.#log.error({ err: error }, "target broke the protocol");
      this.#goodbye(new GatewayError("08P01", `target "${this.#target!.name}" broke the protocol`), "upstream_closed");
      return;
    }
    this.#flushToClient();
    if (this.#draining) this.#endIfIdle();
  };

  #onUpstreamMessage = (type: number, message: Buffer): void => {
    if (type === Backend.ReadyForQuery) {
      if (this.#pendingSyncs > 0) this.#pendingSyncs--;
      if (this.#pendingSyncs === 0) this.#idleTimer?.refresh();
      this.#transactionStatus = message[5]!;
    } else if (type === Backend.ErrorResponse && message.indexOf(FATAL_MARK, 5) === 5) {
      this.#upstreamSentFatal = true;
    }
    this.#toClient.add(message);
  };

  #flushToUpstream(): void {
    const upstream = this.#upstream?.socket;
    if (upstream === undefined || this.#toUpstream.empty) return;
    if (!writeAll(upstream, this.#toUpstream.take())) this.#client.pause();
    if (this.#clientTerminated) endSocket(upstream);
  }

  #flushToClient(): void {
    if (this.#toClient.empty) return;
    if (!writeAll(this.#client, this.#toClient.take())) this.#upstream?.socket.pause();
  }

  #onClientDrain = (): void => {
    if (this.#phase === "relay") this.#upstream?.socket.resume();
  };

  #onUpstreamDrain = (): void => {
    if (this.#phase === "relay") this.#client.resume();
  };

  #onIdle = (): void => {
    if (this.#phase === "relay" && this.#pendingSyncs === 0) {
      this.#goodbye(new GatewayError("57P05", "terminating connection due to idle-session timeout"), "idle_timeout");
    }
  };

  #endIfIdle(): void {
    if (this.#phase === "relay" && this.#pendingSyncs === 0 && this.#transactionStatus === 0x49) {
      this.#goodbye(shuttingDown(), "shutdown");
    }
  }

  // ---- ending --------------------------------------------------------------------------------------------------

  /** Refuses a client that has not reached the relay: an ErrorResponse, then close. */
  #refuse(error: GatewayError, reason: EndReason): void {
    if (this.#phase === "closed") return;
    this.#phase = "closed";
    this.#endReason = reason;
    clearTimeout(this.#startupTimer);
    this.#connecting?.abort();
    this.#log.info({ code: error.code, reason }, `session refused: ${error.message}`);
    endSocket(this.#client, error.toWire());
    this.#finishWhenClosed();
  }

  /** Ends a relaying session with an error for the client and a Terminate for the server. */
  #goodbye(error: GatewayError, reason: EndReason): void {
    if (this.#phase === "closed") return;
    this.#endReason = reason;
    this.#phase = "closed";
    this.#log.info({ code: error.code, reason }, `ending session: ${error.message}`);
    endSocket(this.#client, error.toWire());
    const upstream = this.#upstream?.socket;
    if (upstream) endSocket(upstream, this.#clientTerminated ? undefined : TERMINATE);
    this.#finishWhenClosed();
  }

  #onClientError = (error: Error): void => {
    this.#log.debug({ err: error }, "client connection error");
    this.#client.destroy();
  };

  #onClientClose = (): void => {
    if (this.#phase === "relay") {
      this.#endReason = "client_closed";
      this.#phase = "closed";
      const upstream = this.#upstream?.socket;
      // A client that vanished without Terminate: tell the server, which rolls back what was open.
      if (upstream) endSocket(upstream, this.#clientTerminated ? undefined : TERMINATE);
    } else if (this.#phase !== "closed") {
      this.#endReason = "client_closed";
      this.#phase = "closed";
      clearTimeout(this.#startupTimer);
      this.#connecting?.abort();
    }
    this.#finishWhenClosed();
  };

  #onUpstreamError = (error: Error): void => {
    this.#log.warn({ err: error }, "upstream connection error");
    this.#upstream?.socket.destroy();
  };

  #onUpstreamClose = (): void => {
    if (this.#phase === "relay" && this.#clientTerminated) {
      // The server closing after the client's Terminate is the normal end: nothing to report.
      this.#endReason = "client_closed";
      this.#phase = "closed";
      endSocket(this.#client);
    } else if (this.#phase === "relay") {
      this.#endReason = "upstream_closed";
      this.#phase = "closed";
      this.#flushToClient();
      const lost = new GatewayError("08006", `the connection to target "${this.#target!.name}" was lost`);
      endSocket(this.#client, this.#upstreamSentFatal ? undefined : lost.toWire());
    }
    this.#finishWhenClosed();
  };

  /** Called as each side closes; the session is over when both are. */
  #finishWhenClosed(): void {
    if (!this.#client.closed || (this.#upstream !== undefined && !this.#upstream.socket.closed)) return;
    if (this.#finished) return;
    this.#finished = true;
    clearTimeout(this.#idleTimer);
    if (this.#cancelKey) this.#ctx.cancels.revoke(this.#cancelKey);
    if (this.#upstream !== undefined) {
      this.#log.info({ reason: this.#endReason, durationMs: Date.now() - this.#startedAt }, "session ended");
    }
    this.#resolveClosed();
  }
}

/**
 * Ends our side of a socket (after `last`, if given) unless it is already ended, and keeps reading so the peer's
 * close is seen; whatever still arrives is dropped by the data handlers, which only act while relaying.
 */
function endSocket(socket: Socket, last?: Buffer): void {
  if (!socket.writableEnded && !socket.destroyed) {
    if (last === undefined) socket.end();
    else socket.end(last);
  }
  socket.resume();
}

function writeAll(socket: Socket, parts: Buffer[]): boolean {
  if (parts.length === 1) return socket.write(parts[0]!);
  socket.cork();
  let ok = true;
  for (const part of parts) ok = socket.write(part);
  socket.uncork();
  return ok;
}

function shuttingDown(): GatewayError {
  return new GatewayError("57P01", "terminating connection because the gateway is shutting down");
}

function asGatewayError(error: unknown): GatewayError {
  if (error instanceof GatewayError) return error;
  if (error instanceof ProtocolError) return new GatewayError(error.code, error.message, { cause: error });
  return new GatewayError("XX000", "internal gateway error", { cause: error });
}

function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  return address === "::1" || address.startsWith("127.") || address.startsWith("::ffff:127.");
}
