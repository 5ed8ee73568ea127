import { connect, type Socket } from "node:net";
import { type ConnectionOptions, connect as connectTls } from "node:tls";
import type { Target } from "@agentgate/config";
import { Backend, MessageFramer } from "@agentgate/wire";
import sasl from "pg/lib/crypto/sasl.js";
import md5 from "pg/lib/crypto/utils.js";
import { serialize } from "pg-protocol";
import type { BackendMessage, DatabaseError } from "pg-protocol/dist/messages.js";
import { Parser } from "pg-protocol/dist/parser.js";
import { GatewayError } from "./errors.ts";

/** An open, signed-in connection to a target, ready for queries. */
export interface UpstreamConnection {
  readonly socket: Socket;
  readonly processId: number;
  readonly secretKey: number;
  /** ParameterStatus and NoticeResponse messages the server sent while starting, to replay to the client as sent. */
  readonly startupMessages: Buffer[];
  /** Transaction status from the first ReadyForQuery ('I'). */
  readonly status: "I" | "T" | "E";
  /** Whole messages that arrived after the first ReadyForQuery (normally none). */
  readonly leftover: Buffer[];
  /** The framer holding any partial message that followed; the session keeps reading with it. */
  readonly framer: MessageFramer;
}

export interface ConnectOptions {
  /** Startup parameters to pass on (user and database are the target's own). */
  parameters: ReadonlyMap<string, string>;
  timeoutMs: number;
  maxMessageSize: number;
  /** TLS to the target (after an SSLRequest), or undefined for plain TCP. */
  tls?: ConnectionOptions | undefined;
  /** Aborted when the session or the gateway gives up. */
  signal?: AbortSignal | undefined;
}

/**
 * Opens a connection to the target (TLS when configured) and signs in with the credential the gateway holds (trust,
 * password, md5 or SCRAM-SHA-256). Failures are GatewayErrors safe to show the client: they never name the upstream
 * user or password.
 */
export async function connectUpstream(target: Target, options: ConnectOptions): Promise<UpstreamConnection> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  const abortError = () =>
    timeout.aborted
      ? new GatewayError("08001", `target "${target.name}" did not accept the connection in time`)
      : new GatewayError("57P01", "the gateway is shutting down");
  const socket = await openTransport(target, options.tls, signal, abortError);
  return signIn(socket, target, options, signal, abortError);
}

/** TCP, then TLS negotiated the PostgreSQL way (SSLRequest, 'S', handshake) when `tls` is set. */
function openTransport(
  target: Target,
  tls: ConnectionOptions | undefined,
  signal: AbortSignal,
  abortError: () => GatewayError,
): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const raw = connect({ host: target.host, port: target.port, noDelay: true, keepAlive: true });
    let current: Socket = raw;
    const fail = (error: GatewayError) => {
      signal.removeEventListener("abort", onAbort);
      current.destroy();
      raw.destroy();
      reject(error);
    };
    const done = (socket: Socket) => {
      signal.removeEventListener("abort", onAbort);
      socket.removeAllListeners("error");
      resolve(socket);
    };
    const onAbort = () => fail(abortError());
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    raw.once("error", (cause) =>
      fail(new GatewayError("08001", `cannot reach target "${target.name}": ${describeSocketError(cause)}`, { cause })),
    );
    raw.once("connect", () => {
      if (tls === undefined) return done(raw);
      raw.write(serialize.requestSsl());
      raw.once("data", (answer: Buffer) => {
        // Anything after the 'S' would be unencrypted data injected ahead of the handshake.
        if (answer.length !== 1 || answer[0] !== 0x53) {
          return fail(new GatewayError("08001", `target "${target.name}" does not accept TLS connections`));
        }
        const secure = connectTls({ ...tls, socket: raw, host: target.host });
        current = secure;
        secure.once("error", (cause) =>
          fail(
            new GatewayError("08001", `TLS to target "${target.name}" failed: ${describeSocketError(cause)}`, {
              cause,
            }),
          ),
        );
        secure.once("secureConnect", () => done(secure));
      });
    });
  });
}

function signIn(
  socket: Socket,
  target: Target,
  options: ConnectOptions,
  signal: AbortSignal,
  abortError: () => GatewayError,
): Promise<UpstreamConnection> {
  return new Promise((resolve, reject) => {
    const framer = new MessageFramer(options.maxMessageSize);
    const parser = new Parser();
    const startupMessages: Buffer[] = [];
    let processId = 0;
    let secretKey = 0;
    let scram: ReturnType<typeof sasl.startSession> | undefined;
    const leftover: Buffer[] = [];
    let status: "I" | "T" | "E" | undefined;
    let settled = false;
    let chain = Promise.resolve();

    const fail = (error: GatewayError) => {
      if (settled) return;
      settled = true;
      cleanup();
      socket.destroy();
      reject(error);
    };
    const onAbort = () => fail(abortError());
    const cleanup = () => {
      signal.removeEventListener("abort", onAbort);
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("close", onClose);
    };
    const onError = (cause: Error) =>
      fail(new GatewayError("08001", `cannot reach target "${target.name}": ${describeSocketError(cause)}`, { cause }));
    const onClose = () =>
      fail(new GatewayError("08006", `target "${target.name}" closed the connection during startup`));

    const decode = (message: Buffer): BackendMessage => {
      let decoded: BackendMessage | undefined;
      parser.parse(message, (m) => {
        decoded = m;
      });
      return decoded!;
    };

    const authenticate = async (message: Buffer): Promise<void> => {
      const code = message.readInt32BE(5);
      const password = target.password ?? "";
      switch (code) {
        case 0: // AuthenticationOk
          return;
        case 3: // cleartext
          socket.write(serialize.password(password));
          return;
        case 5: {
          const salt = message.subarray(9, 13);
          socket.write(serialize.password(await md5.postgresMd5PasswordHash(target.user, password, salt)));
          return;
        }
        case 10: {
          const { mechanisms } = decode(message) as BackendMessage & { mechanisms: string[] };
          scram = sasl.startSession(mechanisms);
          socket.write(serialize.sendSASLInitialResponseMessage(scram.mechanism, scram.response));
          return;
        }
        case 11: {
          const { data } = decode(message) as BackendMessage & { data: string };
          if (!scram) throw new Error("SASLContinue without a SASL exchange");
          await sasl.continueSession(scram, password, data);
          socket.write(serialize.sendSCRAMClientFinalMessage(scram.response));
          return;
        }
        case 12: {
          const { data } = decode(message) as BackendMessage & { data: string };
          if (!scram) throw new Error("SASLFinal without a SASL exchange");
          sasl.finalizeSession(scram, data);
          return;
        }
        default:
          throw new Error(`authentication method ${code} is not supported`);
      }
    };

    const onMessage = (type: number, message: Buffer) => {
      switch (type) {
        case Backend.Authentication:
          chain = chain.then(() => authenticate(message));
          chain.catch((cause: unknown) =>
            fail(
              new GatewayError("08001", `the gateway could not sign in to target "${target.name}"`, {
                cause,
                detail: cause instanceof Error ? cause.message.replace(/password.*/i, "password") : undefined,
              }),
            ),
          );
          return;
        case Backend.BackendKeyData:
          processId = message.readInt32BE(5);
          secretKey = message.readInt32BE(9);
          return;
        case Backend.ParameterStatus:
        case Backend.NoticeResponse:
          startupMessages.push(Buffer.from(message));
          return;
        case Backend.ErrorResponse:
          return fail(upstreamStartupError(target, decode(message) as DatabaseError));
        case Backend.ReadyForQuery:
          status = String.fromCharCode(message[5]!) as "I" | "T" | "E";
          return;
        case Backend.NegotiateProtocolVersion:
          return; // we asked for 3.0 without options; nothing to adjust
        default:
          return fail(new GatewayError("08P01", `target "${target.name}" sent an unexpected message during startup`));
      }
    };

    const onData = (chunk: Buffer) => {
      try {
        framer.push(chunk, (type, message) => {
          if (status !== undefined) leftover.push(Buffer.from(message));
          else if (!settled) onMessage(type, message);
        });
      } catch (cause) {
        fail(new GatewayError("08P01", `target "${target.name}" broke the protocol during startup`, { cause }));
        return;
      }
      if (status !== undefined && !settled) {
        settled = true;
        socket.pause(); // the session resumes reading once its own listeners are in place
        cleanup();
        resolve({ socket, processId, secretKey, startupMessages, status, leftover, framer });
      }
    };

    socket.on("data", onData);
    socket.on("error", onError);
    socket.on("close", onClose);
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    const startup: Record<string, string> = { user: target.user, database: target.database };
    for (const [k, v] of options.parameters) startup[k] = v;
    socket.write(serialize.startup(startup));
  });
}

function upstreamStartupError(target: Target, error: DatabaseError): GatewayError {
  const code = error.code ?? "08001";
  // Sign-in failures name the upstream user; the agent must never learn it.
  if (code.startsWith("28")) {
    return new GatewayError("08001", `target "${target.name}" rejected the gateway's credential`);
  }
  if (code === "3D000") return new GatewayError("08001", `target "${target.name}" has no such database`);
  return new GatewayError(code, `target "${target.name}" refused the connection: ${error.message}`);
}

function describeSocketError(error: Error): string {
  const code = (error as NodeJS.ErrnoException).code;
  return code ?? error.message;
}
