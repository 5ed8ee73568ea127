import { randomUUID } from "node:crypto";
import type { Socket } from "node:net";
import { TLSSocket } from "node:tls";
import type { Target } from "@agentgate/config";
import { SessionEndReason } from "@agentgate/events";
import { type Principal, SignInError } from "@agentgate/identity";
import {
  authenticationCleartextPassword,
  authenticationOk,
  Backend,
  backendKeyData,
  Frontend,
  MessageFramer,
  negotiateProtocolVersion,
  ProtocolError,
  parameterStatus,
  parseStartupPacket,
  readyForQuery,
  type StartupPacket,
  startupPacketSize,
  WriteBatch,
} from "@agentgate/wire";
import type { Logger } from "pino";
import { SessionAudit } from "../audit.ts";
import { type CancelKey, sendCancel } from "../cancel.ts";
import type { Backstop } from "../enforce/backstop.ts";
import type { StatementGate } from "../enforce/gate.ts";
import { GatewayError } from "../errors.ts";
import type { MaskCatalog } from "../mask/catalog.ts";
import type { SessionMasking } from "../mask/planner.ts";
import { type PipelineHost, StatementPipeline } from "../statement/pipeline.ts";
import { connectUpstream, type UpstreamConnection } from "../upstream.ts";
import { enforcementFor } from "./admission.ts";
import type { SessionContext } from "./context.ts";
import { asGatewayError, endSocket, isLoopback, shuttingDown, writeAll } from "./sockets.ts";
import { readPasswordMessage, startupUser } from "./startup.ts";

export interface SessionInfo {
  id: string;
  phase: Phase;
  user: string | undefined;
  target: string | undefined;
  principal: Principal | undefined;
  tls: boolean;
}

type Phase = "startup" | "authenticating" | "verifying" | "connecting" | "relay" | "closed";
type EndReason =
  | "client_closed"
  | "upstream_closed"
  | "protocol_error"
  | "shutdown"
  | "idle_timeout"
  | "token_expired"
  | "refused";

const END_REASONS: Record<EndReason, SessionEndReason> = {
  client_closed: SessionEndReason.CLIENT_CLOSED,
  upstream_closed: SessionEndReason.UPSTREAM_CLOSED,
  protocol_error: SessionEndReason.PROTOCOL_ERROR,
  shutdown: SessionEndReason.SHUTDOWN,
  idle_timeout: SessionEndReason.IDLE_TIMEOUT,
  token_expired: SessionEndReason.TOKEN_EXPIRED,
  refused: SessionEndReason.UNSPECIFIED,
};

const SSL_YES = Buffer.from("S");
const SSL_NO = Buffer.from("N");
const TERMINATE = Buffer.from([Frontend.Terminate, 0, 0, 0, 4]);
const SESSION_AUTH = "session_authorization\0";
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
  #startup: { user: string; parameters: ReadonlyMap<string, string> } | undefined;
  #principal: Principal | undefined;
  #expiryTimer: NodeJS.Timeout | undefined;
  /** Decides statements when a policy service is configured. */
  #gate: StatementGate | undefined;
  /** Runs what the policy decided as a read where PostgreSQL refuses writes; with the gate. */
  #backstop: Backstop | undefined;
  /** Masks result columns; undefined when no policy is configured (nothing is masked). */
  #masking: SessionMasking | undefined;
  #maskCatalog: MaskCatalog | undefined;
  /** The audit trail on the bus; undefined when no bus is configured. */
  readonly #audit: SessionAudit | undefined;
  /** The statement path, once relaying. */
  #pipeline: StatementPipeline | undefined;
  /** Aborted when the session ends: stops decisions and sign-in checks in flight. */
  readonly #sessionAbort = new AbortController();
  #cancelKey: CancelKey | undefined;
  #clientFramer: MessageFramer;
  #toUpstream = new WriteBatch();
  #toClient = new WriteBatch();
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
    if (ctx.publisher !== undefined) {
      this.#audit = new SessionAudit({
        publisher: ctx.publisher,
        sessionId: this.id,
        workerId: ctx.workerId,
        logger: ctx.logger,
      });
    }
    this.#log = ctx.logger.child({ session: this.id, client: `${client.remoteAddress}:${client.remotePort}` });
    this.#closed = new Promise((resolve) => {
      this.#resolveClosed = resolve;
    });
  }

  /** What the gateway knows about this session: who, where, and how far it got. */
  describe(): SessionInfo {
    return {
      id: this.id,
      phase: this.#phase,
      user: this.#startup?.user,
      target: this.#target?.name,
      principal: this.#principal,
      tls: this.#client instanceof TLSSocket,
    };
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
    if (this.#phase === "relay") this.#endIfIdle();
    else this.#refuse(shuttingDown(), "shutdown");
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
    if (this.#phase === "authenticating") {
      this.#run(() => this.#onPasswordData(chunk));
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
    const user = startupUser(packet.parameters);
    this.#startup = { user, parameters: packet.parameters };
    this.#log = this.#log.child({ user });
    if (this.#ctx.verifier === undefined) {
      if (!isLoopback(this.#client.remoteAddress)) {
        throw new GatewayError("28000", "the gateway admits only loopback clients: no identity provider is configured");
      }
      this.#admit();
      return;
    }
    if (!(this.#client instanceof TLSSocket) && !this.#plaintextAllowed()) {
      this.#signInRefused("no_tls");
      throw new GatewayError("28000", "TLS is required to sign in with a token", {
        hint: "Connect with sslmode=require.",
      });
    }
    this.#phase = "authenticating";
    this.#client.write(authenticationCleartextPassword());
    const early = this.#startupBytes;
    this.#startupBytes = Buffer.alloc(0);
    if (early.length > 0) this.#onPasswordData(early);
  }

  /** Counts and records a refused sign-in (never the token). */
  #signInRefused(reason: string): void {
    this.#ctx.stats.signInRefused(reason);
    this.#audit?.signInRefused(
      reason,
      `${this.#client.remoteAddress}:${this.#client.remotePort}`,
      this.#startup?.user ?? "",
    );
  }

  #plaintextAllowed(): boolean {
    return (
      this.#ctx.config.allowPlaintextLoopback &&
      isLoopback(this.#client.localAddress) &&
      isLoopback(this.#client.remoteAddress)
    );
  }

  /** Reads the PasswordMessage that carries the token; bytes after it are kept for the relay. */
  #onPasswordData(chunk: Buffer): void {
    const bytes = this.#startupBytes.length === 0 ? chunk : Buffer.concat([this.#startupBytes, chunk]);
    this.#startupBytes = bytes;
    const password = readPasswordMessage(bytes);
    if (password === undefined) return;
    this.#startupBytes = password.rest;
    this.#verify(password.token);
  }

  #verify(token: string): void {
    this.#phase = "verifying";
    this.#client.pause();
    this.#connecting = new AbortController();
    this.#ctx.verifier!.verify(token, AbortSignal.any([this.#connecting.signal, this.#ctx.shutdown])).then(
      (principal) => {
        if (this.#phase !== "verifying") return;
        this.#principal = principal;
        this.#log = this.#log.child({ principal: principal.subject, groups: principal.groups });
        this.#run(() => this.#admit());
      },
      (error: unknown) => {
        if (this.#phase !== "verifying") return;
        const reason = error instanceof SignInError ? error.reason : "unavailable";
        this.#signInRefused(reason);
        const message = error instanceof SignInError ? error.message : "the token could not be checked";
        const code = reason === "unavailable" ? "28000" : "28P01";
        this.#refuse(new GatewayError(code, `sign-in refused: ${message}`), "refused");
      },
    );
  }

  /** Runs a startup step, turning what it throws into a refusal. */
  #run(step: () => void): void {
    try {
      step();
    } catch (error) {
      this.#refuse(asGatewayError(error), error instanceof ProtocolError ? "protocol_error" : "refused");
    }
  }

  /** The client is who it says (or identity is off): pick the target and open the upstream connection. */
  #admit(): void {
    const { user, parameters } = this.#startup!;
    const targetName = parameters.get("database") || user;
    const target = this.#ctx.targets.get(targetName);
    if (target === undefined) {
      throw new GatewayError("3D000", `target "${targetName}" does not exist`, {
        hint: "Connect with the name of a configured target as the database name.",
      });
    }
    this.#target = target;
    this.#log = this.#log.child({ target: target.name });
    this.#audit?.identify(this.#principal, target.name);
    const forwarded = new Map<string, string>();
    for (const [k, v] of parameters) if (!PARAMETERS_NOT_FORWARDED.has(k)) forwarded.set(k, v);
    const policy = this.#ctx.policy;
    if (policy === undefined) {
      this.#connect(target, forwarded, parameters.get("application_name") ?? "");
      return;
    }
    this.#phase = "connecting";
    this.#client.pause();
    enforcementFor(this.#ctx, policy, {
      target,
      principal: this.#principal,
      sessionId: this.id,
      log: this.#log,
      signal: this.#sessionAbort.signal,
    }).then((enforcement) => {
      if (this.#phase !== "connecting") return;
      this.#gate = enforcement.gate;
      this.#backstop = enforcement.backstop;
      this.#masking = enforcement.masking;
      this.#maskCatalog = enforcement.maskCatalog;
      // The backstop: every session under a policy starts read-only upstream (see enforce/backstop.ts).
      forwarded.set("default_transaction_read_only", "on");
      this.#connect(target, forwarded, parameters.get("application_name") ?? "");
    });
  }

  #connect(target: Target, parameters: Map<string, string>, applicationName: string): void {
    this.#phase = "connecting";
    this.#client.pause();
    this.#connecting = new AbortController();
    connectUpstream(target, {
      parameters,
      timeoutMs: this.#ctx.config.connectTimeoutMs,
      maxMessageSize: this.#ctx.config.maxMessageSize,
      tls: this.#ctx.upstreamTls.get(target.name),
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
    this.#cancelKey = this.#ctx.cancels.issue(() => {
      // A statement held for approval is not on the server yet: the cancel withdraws the request.
      this.#pipeline?.cancelHeld();
      return this.#upstream ? { target, processId: upstream.processId, secretKey: upstream.secretKey } : undefined;
    });
    const socket = upstream.socket;
    socket.on("data", this.#onUpstreamData);
    socket.on("error", this.#onUpstreamError);
    socket.on("close", this.#onUpstreamClose);
    socket.on("drain", this.#onUpstreamDrain);
    const started = this.#audit?.sessionStarted({
      clientAddress: `${this.#client.remoteAddress}:${this.#client.remotePort}`,
      applicationName,
      tls: this.#client instanceof TLSSocket,
    });
    if (started === undefined) {
      this.#enterRelay(upstream, applicationName);
      return;
    }
    started.then(
      () => {
        if (this.#phase === "connecting") this.#enterRelay(upstream, applicationName);
      },
      (error: unknown) => {
        if (this.#phase !== "connecting") return;
        this.#log.error({ err: error }, "audit record of the session not stored: session refused");
        endSocket(upstream.socket, TERMINATE);
        this.#refuse(
          new GatewayError("57P03", "the audit log is unavailable; the gateway accepts no sessions until it is back"),
          "refused",
        );
      },
    );
  }

  /** Tells the client it is in, then relays. */
  #enterRelay(upstream: UpstreamConnection, applicationName: string): void {
    const socket = upstream.socket;
    this.#client.cork();
    this.#client.write(authenticationOk());
    for (const message of upstream.startupMessages) {
      const shown = this.#backstop === undefined ? message : this.#backstop.startupParameter(message);
      this.#client.write(this.#hideUpstreamUser(shown));
    }
    this.#client.write(backendKeyData(this.#cancelKey!.processId, this.#cancelKey!.secretKey));
    this.#client.write(readyForQuery(upstream.status));
    this.#client.uncork();
    this.#pipeline = new StatementPipeline({
      host: this.#pipelineHost,
      toUpstream: this.#toUpstream,
      toClient: this.#toClient,
      gate: this.#gate,
      backstop: this.#backstop,
      masking: this.#masking,
      maskCatalog: this.#maskCatalog,
      audit: this.#audit,
      sessionSignal: this.#sessionAbort.signal,
      showUser: (message) => this.#hideUpstreamUser(message),
    });
    this.#phase = "relay";
    this.#armExpiry();
    if (this.#ctx.config.idleSessionTimeoutMs > 0) {
      this.#idleTimer = setTimeout(this.#onIdle, this.#ctx.config.idleSessionTimeoutMs);
    }
    this.#log.info(
      { applicationName, tls: this.#client instanceof TLSSocket, upstreamPid: upstream.processId },
      "session started",
    );

    for (const message of upstream.leftover) this.#pipeline.fromUpstream(message[0]!, message);
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
    const pipeline = this.#pipeline!;
    try {
      this.#clientFramer.push(chunk, pipeline.fromClient);
    } catch (error) {
      // Forward what was whole before the bad message, then end the session.
      this.#flushToUpstream();
      this.#goodbye(asGatewayError(error), "protocol_error");
      return;
    }
    // While a statement waits for its audit record, what was forwarded before it (a Parse) goes with it in one write
    // once the record is stored; a wait for a policy decision flushes it at once instead (see StatementPipeline).
    if (!pipeline.deciding) this.#flushToUpstream();
  }

  readonly #pipelineHost: PipelineHost = {
    log: () => this.#log,
    relaying: () => this.#phase === "relay",
    pauseClient: () => this.#client.pause(),
    resumeClient: () => this.#client.resume(),
    flushToUpstream: () => this.#flushToUpstream(),
    fail: (error) => this.#failRelay(error),
    idle: () => this.#idleTimer?.refresh(),
  };

  /** A held message turned out malformed (08P01), or deciding failed: forward what was whole, end the session. */
  #failRelay(error: unknown): void {
    if (this.#phase !== "relay") return;
    if (!(error instanceof ProtocolError)) this.#log.error({ err: error }, "statement decision failed");
    this.#flushToUpstream();
    this.#goodbye(asGatewayError(error), "protocol_error");
  }

  #onUpstreamData = (chunk: Buffer): void => {
    if (this.#phase !== "relay") return;
    try {
      this.#upstream!.framer.push(chunk, this.#pipeline!.fromUpstream);
    } catch (error) {
      this.#flushToClient();
      // A malformed message is the target's fault; anything else failed in the gateway's own handling of a good one.
      const target = error instanceof ProtocolError;
      this.#log.error({ err: error }, target ? "target broke the protocol" : "relaying the target's answer failed");
      const failure = target
        ? new GatewayError("08P01", `target "${this.#target!.name}" broke the protocol`)
        : new GatewayError("XX000", "internal gateway error: the gateway could not relay the result", { cause: error });
      this.#goodbye(failure, target ? "upstream_closed" : "protocol_error");
      return;
    }
    this.#flushToClient();
    if (this.#draining) this.#endIfIdle();
  };

  /** The server reports session_authorization (the upstream user): the client sees the name it signed in with. */
  #hideUpstreamUser(message: Buffer): Buffer {
    if (message[0] !== Backend.ParameterStatus || !message.subarray(5).toString("latin1").startsWith(SESSION_AUTH)) {
      return message;
    }
    return parameterStatus("session_authorization", this.#startup!.user);
  }

  #flushToUpstream(): void {
    const upstream = this.#upstream?.socket;
    if (upstream === undefined || this.#toUpstream.empty) return;
    if (!writeAll(upstream, this.#toUpstream.take())) this.#client.pause();
    if (this.#pipeline?.clientTerminated) endSocket(upstream);
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
    // A statement waiting for its decision (an approval may take minutes) is not idleness.
    if (this.#phase === "relay" && this.#pipeline!.quiet && !this.#pipeline!.deciding) {
      this.#goodbye(new GatewayError("57P05", "terminating connection due to idle-session timeout"), "idle_timeout");
    }
  };

  /** A session lives no longer than its token: at expiry a running query is cancelled and the session ends. */
  #armExpiry(): void {
    if (this.#principal === undefined) return;
    const remaining = this.#principal.expiresAt * 1000 - Date.now();
    this.#expiryTimer = setTimeout(
      () => {
        if (this.#principal!.expiresAt * 1000 > Date.now()) return this.#armExpiry(); // a clamped long delay
        this.#onTokenExpired();
      },
      Math.max(0, Math.min(remaining, 2 ** 31 - 1)),
    );
  }

  #onTokenExpired(): void {
    if (this.#phase !== "relay") return;
    const upstream = this.#upstream!;
    if (!this.#pipeline!.quiet) {
      // Stop what is running before the Terminate, so nothing keeps running on an expired identity.
      sendCancel(
        { target: this.#target!, processId: upstream.processId, secretKey: upstream.secretKey },
        this.#ctx.config.connectTimeoutMs,
      ).catch((error: unknown) => this.#log.warn({ err: error }, "cancel at token expiry failed"));
    }
    this.#goodbye(
      new GatewayError("28000", "session ended: the access token expired", {
        hint: "Connect again with a fresh token.",
      }),
      "token_expired",
    );
  }

  #endIfIdle(): void {
    if (this.#phase === "relay" && this.#pipeline!.idle) {
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
    if (upstream) endSocket(upstream, this.#pipeline?.clientTerminated ? undefined : TERMINATE);
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
      if (upstream) endSocket(upstream, this.#pipeline?.clientTerminated ? undefined : TERMINATE);
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
    if (this.#phase === "relay" && this.#pipeline?.clientTerminated) {
      // The server closing after the client's Terminate is the normal end: nothing to report.
      this.#endReason = "client_closed";
      this.#phase = "closed";
      endSocket(this.#client);
    } else if (this.#phase === "relay") {
      this.#endReason = "upstream_closed";
      this.#phase = "closed";
      this.#flushToClient();
      const lost = new GatewayError("08006", `the connection to target "${this.#target!.name}" was lost`);
      endSocket(this.#client, this.#pipeline?.upstreamSentFatal ? undefined : lost.toWire());
    }
    this.#finishWhenClosed();
  };

  /** Called as each side closes; the session is over when both are. */
  #finishWhenClosed(): void {
    if (!this.#client.closed || (this.#upstream !== undefined && !this.#upstream.socket.closed)) return;
    if (this.#finished) return;
    this.#finished = true;
    clearTimeout(this.#idleTimer);
    clearTimeout(this.#expiryTimer);
    this.#sessionAbort.abort();
    if (this.#cancelKey) this.#ctx.cancels.revoke(this.#cancelKey);
    if (this.#upstream !== undefined) {
      this.#log.info({ reason: this.#endReason, durationMs: Date.now() - this.#startedAt }, "session ended");
      this.#audit?.sessionEnded(END_REASONS[this.#endReason ?? "client_closed"], this.#endReason ?? "");
    }
    this.#resolveClosed();
  }
}
