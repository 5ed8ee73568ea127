import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { type App, type Receiver, verifySlackRequest } from "@slack/bolt";
import type { Logger } from "pino";

const MAX_BODY = 1024 * 1024;
/** Slack signs a timestamp that must be within 5 minutes; a signature seen again within that window is a replay. */
const REPLAY_WINDOW_MS = 10 * 60_000;

export interface SignedReceiverOptions {
  signingSecret: string;
  logger: Logger;
}

/**
 * Bolt's HTTP entry, on node:http: every request must carry a valid Slack signature over its exact body and a
 * timestamp within five minutes (Bolt's verifySlackRequest), else 401; a request whose signature was already seen
 * is a replay, refused with 409 before it reaches the app. Interaction payloads (form-encoded `payload=`) and
 * Events API bodies (JSON) are handed to the app with an `ack` that answers the HTTP request.
 */
export class SignedReceiver implements Receiver {
  readonly #o: SignedReceiverOptions;
  #app: App | undefined;
  #server: Server | undefined;
  readonly #seen = new Map<string, number>();

  constructor(options: SignedReceiverOptions) {
    this.#o = options;
  }

  init(app: App): void {
    this.#app = app;
  }

  async start(port: number, host = "127.0.0.1"): Promise<AddressInfo> {
    const server = createServer((req, res) => {
      this.#handle(req)
        .then(({ status, body }) => {
          if (res.headersSent) return;
          res.writeHead(status, { "content-type": "application/json" });
          res.end(body);
        })
        .catch((error: unknown) => {
          this.#o.logger.error({ err: error }, "slack request failed");
          if (!res.headersSent) {
            res.writeHead(500);
            res.end();
          }
        });
    });
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => resolve());
    });
    return server.address() as AddressInfo;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
  }

  async #handle(req: IncomingMessage): Promise<{ status: number; body: string }> {
    if (req.method !== "POST") return { status: 405, body: "" };
    const raw = await readBody(req);
    if (raw === undefined) return { status: 413, body: "" };
    const signature = String(req.headers["x-slack-signature"] ?? "");
    const timestamp = Number(req.headers["x-slack-request-timestamp"] ?? Number.NaN);
    try {
      verifySlackRequest({
        signingSecret: this.#o.signingSecret,
        body: raw,
        headers: { "x-slack-signature": signature, "x-slack-request-timestamp": timestamp },
      });
    } catch (error) {
      this.#o.logger.warn({ reason: (error as Error).message }, "slack request refused: bad or missing signature");
      return { status: 401, body: JSON.stringify({ error: "invalid signature" }) };
    }
    const now = Date.now();
    for (const [seen, at] of this.#seen) if (now - at > REPLAY_WINDOW_MS) this.#seen.delete(seen);
    if (this.#seen.has(signature)) {
      this.#o.logger.warn("slack request refused: replayed");
      return { status: 409, body: JSON.stringify({ error: "replayed request" }) };
    }
    this.#seen.set(signature, now);

    let body: Record<string, unknown>;
    try {
      const type = String(req.headers["content-type"] ?? "");
      if (type.startsWith("application/x-www-form-urlencoded")) {
        const form = new URLSearchParams(raw);
        const payload = form.get("payload");
        body = payload === null ? Object.fromEntries(form) : (JSON.parse(payload) as Record<string, unknown>);
      } else {
        body = JSON.parse(raw) as Record<string, unknown>;
      }
    } catch {
      return { status: 400, body: JSON.stringify({ error: "unreadable body" }) };
    }
    if (body.type === "url_verification") return { status: 200, body: JSON.stringify({ challenge: body.challenge }) };

    // Slack wants its answer within 3 seconds: the HTTP response goes as soon as the listener acks, while the
    // listener goes on (an approval call, a modal).
    return new Promise((resolve) => {
      let answered = false;
      const answer = (status: number, response?: unknown) => {
        if (answered) return;
        answered = true;
        resolve({ status, body: response === undefined ? "" : JSON.stringify(response) });
      };
      this.#app!.processEvent({ body, ack: async (response?: unknown) => answer(200, response) }).then(
        () => answer(200),
        (error: unknown) => {
          this.#o.logger.error({ err: error }, "slack event handling failed");
          answer(500);
        },
      );
    });
  }
}

function readBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        req.destroy();
        resolve(undefined);
      } else chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}
