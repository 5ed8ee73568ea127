import { connect, type Socket } from "node:net";
import { parseConfig } from "@agentgate/config";
import { freshDatabase } from "@agentgate/testkit";
import { MessageFramer } from "@agentgate/wire";
import { serialize } from "pg-protocol";
import { pino } from "pino";
import { createProxy, type ProxyWorker } from "./proxy.ts";

export interface TestGateway {
  /** A fresh database on the run's shared PostgreSQL, reached directly (as the superuser). */
  readonly directUrl: string;
  /** The same database through the gateway, as target "app"; no password needed on loopback. */
  url(user?: string): string;
  readonly port: number;
  readonly proxy: ProxyWorker;
  readonly database: string;
  /** Closes the gateway (draining for up to `drainTimeoutMs`) and drops the database. */
  close(drainTimeoutMs?: number): Promise<void>;
}

export interface TestGatewayOptions {
  /** Extra `proxy:` settings, e.g. tls or idleSessionTimeoutMs. */
  proxy?: Record<string, unknown>;
  /** The `identity:` section; without it the gateway admits loopback clients without a password. */
  identity?: Record<string, unknown>;
  /** Target "app" settings replacing the fresh database's (url, tls). */
  target?: { url?: string; tls?: Record<string, unknown> };
  /** Log level; "silent" unless AGENTGATE_TEST_LOG is set. */
  logLevel?: string;
}

/** Starts an in-process gateway on a free loopback port in front of a fresh database, for integration tests. */
export async function startTestGateway(options: TestGatewayOptions = {}): Promise<TestGateway> {
  const db = await freshDatabase();
  const config = parseConfig({
    proxy: { listen: "127.0.0.1:0", drainTimeoutMs: 2000, ...options.proxy },
    identity: options.identity,
    targets: { app: { url: db.url, ...options.target } },
  });
  const level = options.logLevel ?? process.env.AGENTGATE_TEST_LOG ?? "silent";
  const proxy = createProxy({ config, logger: pino({ level }, pino.destination(2)) });
  const address = await proxy.listen();
  return {
    directUrl: db.url,
    database: db.name,
    port: address.port,
    proxy,
    url: (user = "agent") => `postgresql://${user}@127.0.0.1:${address.port}/app`,
    async close(drainTimeoutMs = 2000) {
      await proxy.close({ drainTimeoutMs });
      await db.drop();
    },
  };
}

/** A protocol-level client for tests: send raw bytes, read framed messages. */
export interface RawClient {
  readonly socket: Socket;
  send(bytes: Buffer): void;
  /** Next message from the server, or undefined once the server closed. Rejects after `timeoutMs`. */
  next(timeoutMs?: number): Promise<RawMessage | undefined>;
  /** Reads messages until one of type `type` (a character), returning all read including it. */
  until(type: string, timeoutMs?: number): Promise<RawMessage[]>;
  /** Bytes that came in before any framing: the one-byte answers to SSLRequest and GSSENCRequest. */
  readByte(timeoutMs?: number): Promise<string>;
  /** Resolves when the server closed the connection. */
  readonly ended: Promise<void>;
  close(): void;
}

export interface RawMessage {
  type: string;
  bytes: Buffer;
  /** For ErrorResponse/NoticeResponse: the fields by code (S, C, M, ...). */
  fields?: Record<string, string>;
}

/**
 * A raw client signed in to target "app" as `user` with `password` (a token) in plaintext: ready for queries, with
 * the messages of its startup (ParameterStatus, BackendKeyData, ReadyForQuery).
 */
export async function rawSignIn(
  port: number,
  user: string,
  password: string,
): Promise<{ raw: RawClient; startup: RawMessage[] }> {
  const raw = await rawConnect(port);
  raw.send(serialize.startup({ user, database: "app" }));
  const ask = await raw.next();
  if (ask?.type !== "R") throw new Error(`expected a password request, got ${ask?.type}`);
  raw.send(serialize.password(password));
  return { raw, startup: await raw.until("Z") };
}

export function rawConnect(port: number): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port }, () => resolve(client));
    socket.once("error", reject);
    const framer = new MessageFramer(1 << 30);
    let pending = Buffer.alloc(0);
    let framing = false;
    const queue: RawMessage[] = [];
    const waiters: (() => void)[] = [];
    let closed = false;
    const ended = new Promise<void>((r) => socket.once("close", () => r()));
    const wake = () => {
      for (const w of waiters.splice(0)) w();
    };
    socket.on("data", (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      if (framing) {
        framer.push(pending, (type, bytes) => queue.push(toRaw(type, Buffer.from(bytes))));
        pending = Buffer.alloc(0);
      }
      wake();
    });
    socket.on("close", () => {
      closed = true;
      wake();
    });
    socket.on("error", () => undefined);
    const wait = (timeoutMs: number, ready: () => boolean) =>
      new Promise<void>((res, rej) => {
        const check = () => {
          if (ready() || closed) {
            clearTimeout(timer);
            res();
          } else waiters.push(check);
        };
        const timer = setTimeout(() => rej(new Error(`no message within ${timeoutMs} ms`)), timeoutMs);
        check();
      });
    const startFraming = () => {
      if (framing) return;
      framing = true;
      if (pending.length > 0) {
        framer.push(pending, (type, bytes) => queue.push(toRaw(type, Buffer.from(bytes))));
        pending = Buffer.alloc(0);
      }
    };
    const client: RawClient = {
      socket,
      ended,
      send: (bytes) => socket.write(bytes),
      async next(timeoutMs = 5000) {
        startFraming();
        await wait(timeoutMs, () => queue.length > 0);
        return queue.shift();
      },
      async until(type, timeoutMs = 5000) {
        const out: RawMessage[] = [];
        for (;;) {
          const m = await client.next(timeoutMs);
          if (m === undefined) throw new Error(`connection closed before '${type}'; got ${out.map((x) => x.type)}`);
          out.push(m);
          if (m.type === type) return out;
        }
      },
      async readByte(timeoutMs = 5000) {
        await wait(timeoutMs, () => pending.length > 0);
        if (pending.length === 0) throw new Error("connection closed");
        const byte = String.fromCharCode(pending[0]!);
        pending = pending.subarray(1);
        return byte;
      },
      close: () => socket.destroy(),
    };
  });
}

function toRaw(type: number, bytes: Buffer): RawMessage {
  const t = String.fromCharCode(type);
  if (t !== "E" && t !== "N") return { type: t, bytes };
  const fields: Record<string, string> = {};
  let offset = 5;
  while (offset < bytes.length && bytes[offset] !== 0) {
    const end = bytes.indexOf(0, offset + 1);
    fields[String.fromCharCode(bytes[offset]!)] = bytes.toString("utf8", offset + 1, end);
    offset = end + 1;
  }
  return { type: t, bytes, fields };
}
