import assert from "node:assert/strict";
import { appendFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { MessageFramer } from "@agentgate/wire";
import pg from "pg";
import { serialize } from "pg-protocol";
import {
  describeScript,
  FUZZ_TABLE_DDL,
  type FuzzOptions,
  type FuzzScript,
  frontendMessage,
  fuzzScript,
  predictRelay,
  predictStartup,
  type RelayVerdict,
  Rng,
  startupMessage,
  startupPacket,
  withLength,
} from "./fuzz.ts";
import { type RawClient, rawConnect, startTestGateway, type TestGateway } from "./testing.ts";

// Scaled for CI; the soak (loadtest/soak.ts) runs 100,000. AGENTGATE_FUZZ_ONLY=12,345 replays single scripts.
const MESSAGES = envInt("AGENTGATE_FUZZ_MESSAGES", 20_000);
const SEED = envInt("AGENTGATE_FUZZ_SEED", 20_261_121);
const CONCURRENCY = envInt("AGENTGATE_FUZZ_CONCURRENCY", 8);
const ONLY = (process.env.AGENTGATE_FUZZ_ONLY ?? "").split(",").filter(Boolean).map(Number);
const MAX_MESSAGE_SIZE = 1024 * 1024;
const STARTUP_TIMEOUT_MS = 1000;
/** A connection still open this long after the client's last byte is a hang. */
const HANG_MS = 10_000;
/** The control session runs a query after every this many fuzz messages. */
const CONTROL_EVERY = 250;
/** The test process holds the gateway and every fuzz client; far more than this means something piles up. */
const MAX_RSS_BYTES = 400 * 1024 * 1024;

const BACKEND_TYPES = new Set([..."RK23CdcGHWDIEVvnNAtS1sZT"].map((c) => c.charCodeAt(0)));

function envInt(name: string, fallback: number): number {
  const value = process.env[name];
  if (value === undefined || value === "") return fallback;
  const n = Number(value.replaceAll("_", ""));
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got ${value}`);
  return n;
}

/** Appends one JSON line of results for loadtest/soak.ts when AGENTGATE_SOAK_RESULTS names a file. */
function report(result: Record<string, unknown>): void {
  const file = process.env.AGENTGATE_SOAK_RESULTS;
  if (file) appendFileSync(file, `${JSON.stringify(result)}\n`);
}

// ---- one fuzz connection -----------------------------------------------------------------------------------------------

interface Received {
  type: string;
  fields?: Record<string, string>;
}

/** What happened on one fuzz connection. */
interface Outcome {
  connectError?: string;
  /** The gateway ended the connection before the client ended its side. */
  closedByServer: boolean;
  hung: boolean;
  reset: boolean;
  /** A ReadyForQuery arrived: the session started. */
  started: boolean;
  startFailed: boolean;
  answers: string;
  answerTimeout: boolean;
  /** The last framed message, with its fields for ErrorResponse/NoticeResponse. */
  last: Received | undefined;
  messagesIn: number;
  framingError?: string;
  unknownBackendType?: number;
  elapsedMs: number;
  /** Fuzz messages written whole. */
  sent: number;
}

function errorFields(message: Buffer): Record<string, string> {
  const fields: Record<string, string> = {};
  let offset = 5;
  while (offset < message.length && message[offset] !== 0) {
    const end = message.indexOf(0, offset + 1);
    if (end < 0) break;
    fields[String.fromCharCode(message[offset]!)] = message.toString("utf8", offset + 1, end);
    offset = end + 1;
  }
  return fields;
}

/** Plays one script against the gateway, reading everything it sends, and reports how the connection ended. */
async function play(port: number, script: FuzzScript): Promise<Outcome> {
  const startedAt = Date.now();
  const outcome: Outcome = {
    closedByServer: false,
    hung: false,
    reset: false,
    started: false,
    startFailed: false,
    answers: "",
    answerTimeout: false,
    last: undefined,
    messagesIn: 0,
    elapsedMs: 0,
    sent: 0,
  };
  const socket: Socket = connect({ host: "127.0.0.1", port, noDelay: true });
  let closed = false;
  let weEnded = false;
  let serverEnded = false;
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of waiters) w();
  };
  const until = (ready: () => boolean, timeoutMs: number) =>
    new Promise<boolean>((resolve) => {
      const check = () => {
        if (!ready() && !closed) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve(ready());
      };
      const timer = setTimeout(
        () => {
          waiters.delete(check);
          resolve(ready());
        },
        Math.max(0, timeoutMs),
      );
      waiters.add(check);
      check();
    });

  const framer = new MessageFramer(1 << 30);
  const onMessage = (type: number, message: Buffer) => {
    outcome.messagesIn++;
    if (!BACKEND_TYPES.has(type)) outcome.unknownBackendType ??= type;
    if (type === 0x5a) outcome.started = true;
    const t = String.fromCharCode(type);
    outcome.last = t === "E" || t === "N" ? { type: t, fields: errorFields(message) } : { type: t };
  };
  socket.on("data", (chunk: Buffer) => {
    let data = chunk;
    if (script.answers < 0) return wake(); // unpredictable: only liveness is judged
    while (outcome.answers.length < script.answers && data.length > 0) {
      outcome.answers += String.fromCharCode(data[0]!);
      data = data.subarray(1);
    }
    if (data.length > 0 && outcome.framingError === undefined) {
      try {
        framer.push(data, onMessage);
      } catch (error) {
        outcome.framingError = (error as Error).message;
      }
    }
    wake();
  });
  socket.on("end", () => {
    serverEnded = true;
    if (!weEnded) outcome.closedByServer = true;
  });
  socket.on("close", () => {
    closed = true;
    wake();
  });
  socket.on("error", () => undefined);

  const connected = await new Promise<string | undefined>((resolve) => {
    socket.once("connect", () => resolve(undefined));
    socket.once("error", (error) => resolve(error.message));
  });
  if (connected !== undefined) {
    outcome.connectError = connected;
    return outcome;
  }

  let lastByteAt = Date.now();
  const gone = () => closed || serverEnded;
  if (script.startup !== undefined) {
    socket.write(script.startup);
    if (!(await until(() => outcome.started, HANG_MS))) {
      outcome.startFailed = true;
      socket.destroy();
      outcome.elapsedMs = Date.now() - startedAt;
      return outcome;
    }
  }
  for (const chunk of script.chunks) {
    if (gone()) break;
    if (chunk.pauseMs > 0) await sleep(chunk.pauseMs);
    if (gone()) break;
    socket.write(chunk.bytes);
    lastByteAt = Date.now();
    outcome.sent = chunk.messagesDone;
    if (chunk.awaitAnswers > 0 && !(await until(() => outcome.answers.length >= chunk.awaitAnswers, 5000))) {
      outcome.answerTimeout = !gone();
      break;
    }
  }

  if (script.ending !== "wait" && !gone()) {
    if (script.lingerMs > 0) await sleep(script.lingerMs);
    weEnded = true;
    if (script.ending === "reset") {
      socket.resetAndDestroy();
      outcome.reset = true;
      outcome.elapsedMs = Date.now() - startedAt;
      return outcome;
    }
    if (script.ending === "terminate") socket.write(serialize.end());
    socket.end();
    lastByteAt = Date.now();
  }
  if (!(await until(() => closed, lastByteAt + HANG_MS - Date.now()))) {
    outcome.hung = true;
    socket.destroy();
  }
  outcome.elapsedMs = Date.now() - startedAt;
  return outcome;
}

// ---- judging an outcome against the protocol's expectation ------------------------------------------------------------

function show(received: Received | undefined): string {
  if (received === undefined) return "nothing";
  if (received.fields === undefined) return `'${received.type}'`;
  const f = received.fields;
  return `${received.type} ${f.S ?? "?"} ${f.C ?? "?"} "${f.M ?? ""}"${f.R ? ` (server, ${f.R})` : ""}`;
}

/** Returns why the outcome breaks the expectation, or undefined when it is fine. */
function judge(script: FuzzScript, o: Outcome): string | undefined {
  if (o.connectError !== undefined) return `could not connect: ${o.connectError}`;
  if (o.hung) return `hang: still open ${HANG_MS} ms after the client's last byte (last received: ${show(o.last)})`;
  if (o.startFailed) return `the valid startup got no ReadyForQuery within ${HANG_MS} ms (got ${show(o.last)})`;
  if (o.framingError !== undefined) return `the gateway sent bytes that do not frame: ${o.framingError}`;
  if (o.unknownBackendType !== undefined)
    return `the gateway sent unknown message type 0x${o.unknownBackendType.toString(16)}`;
  if (o.answerTimeout) return "no answer to an SSL/GSSENC request within 5 s";
  if (script.answers > 0 && o.answers !== "N".repeat(script.answers) && !o.reset) {
    return `expected ${script.answers} 'N' answers, got ${JSON.stringify(o.answers)}`;
  }
  if (o.reset) return undefined;
  const error = o.last?.type === "E" ? o.last.fields : undefined;
  const fatal = error?.S === "FATAL";
  // PostgreSQL names the source routine (R) in its errors; the gateway's own errors do not.
  const fromServer = error?.R !== undefined;
  const startupTimedOut =
    fatal && !fromServer && error?.C === "08006" && o.elapsedMs >= STARTUP_TIMEOUT_MS * 0.9 && !o.started;
  const got = `${o.closedByServer ? "closed by the gateway" : "closed after the client left"} after ${show(o.last)}`;
  const e = script.expect;
  switch (e.kind) {
    case "any":
      return undefined;
    case "refused":
      if (o.closedByServer && ((fatal && !fromServer && error?.C === e.code) || startupTimedOut)) return undefined;
      return `expected refusal ${e.code} (${e.reason}); ${got}`;
    case "cancel":
      if (o.closedByServer && o.messagesIn === 0) return undefined;
      return `expected a silent close after CancelRequest; ${got}`;
    case "incomplete":
      if (script.ending === "wait") {
        return o.closedByServer && startupTimedOut ? undefined : `expected the startup timeout (08006); ${got}`;
      }
      return o.closedByServer && !startupTimedOut ? `the gateway closed a pending startup early; ${got}` : undefined;
    case "session":
      if (!o.started) {
        // The gateway or the server refused the startup (or we left while it connected): an error must say so.
        if (o.closedByServer && !fatal) return `startup ended without an error; ${got}`;
        return undefined;
      }
      return judgeRelay(e.relay, o, got, fatal, fromServer, error?.C);
  }
}

function judgeRelay(
  relay: RelayVerdict,
  o: Outcome,
  got: string,
  fatal: boolean,
  fromServer: boolean,
  code: string | undefined,
): string | undefined {
  switch (relay.kind) {
    case "terminate":
      return undefined;
    case "violation":
      if (!o.closedByServer) return `expected the gateway to close with ${relay.code} (${relay.reason}); ${got}`;
      if (!fatal) return `expected FATAL ${relay.code} (${relay.reason}) before the close; ${got}`;
      // The server may have ended the session first, over a message that came before the violation.
      if (!fromServer && code !== relay.code) return `expected ${relay.code} (${relay.reason}); ${got}`;
      return undefined;
    case "open":
      if (!o.closedByServer) return undefined;
      if (!fatal) return `the session ended without an error; ${got}`;
      if (!fromServer) return `the gateway ended a session whose traffic frames correctly; ${got}`;
      return undefined;
  }
}

// ---- the run -----------------------------------------------------------------------------------------------------------

interface Control {
  ok: number;
  failures: string[];
  maxLatencyMs: number;
  freshSessions: number;
}

async function timed<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs a query on the control session every CONTROL_EVERY fuzz messages, and now and then on a brand-new session. */
async function controlLoop(gw: TestGateway, client: pg.Client, progress: () => number, done: () => boolean) {
  const control: Control = { ok: 0, failures: [], maxLatencyMs: 0, freshSessions: 0 };
  let next = CONTROL_EVERY;
  for (let i = 1; ; i++) {
    while (progress() < next && !done()) await sleep(5);
    const last = done();
    next += CONTROL_EVERY;
    const started = performance.now();
    try {
      const { rows } = await timed(client.query<{ v: number }>("SELECT $1::int * 2 AS v", [i]), 5000, "control query");
      assert.equal(rows[0]?.v, i * 2);
      if (i % 10 === 0 || last) {
        const fresh = new pg.Client({ connectionString: gw.url(), application_name: "fuzz-fresh" });
        fresh.on("error", () => undefined);
        await timed(fresh.connect(), 5000, "a new session");
        const r = await timed(fresh.query<{ one: number }>("SELECT 1 AS one"), 5000, "a new session's query");
        assert.equal(r.rows[0]?.one, 1);
        await fresh.end();
        control.freshSessions++;
      }
      control.ok++;
    } catch (error) {
      control.failures.push(`after ${progress()} messages: ${(error as Error).message}`);
    }
    control.maxLatencyMs = Math.max(control.maxLatencyMs, performance.now() - started);
    if (last) return control;
  }
}

describe("the proxy under fuzzing", () => {
  const options: FuzzOptions = {
    maxMessageSize: MAX_MESSAGE_SIZE,
    database: "app",
    user: "agent",
    startupPauseBudgetMs: STARTUP_TIMEOUT_MS * 0.4,
  };
  let gw: TestGateway;
  let control: pg.Client;
  const controlErrors: Error[] = [];

  before(async () => {
    gw = await startTestGateway({
      proxy: { maxMessageSize: MAX_MESSAGE_SIZE, startupTimeoutMs: STARTUP_TIMEOUT_MS },
    });
    const admin = new pg.Client({ connectionString: gw.directUrl });
    await admin.connect();
    await admin.query(FUZZ_TABLE_DDL);
    // Safety nets against what random bytes might ask the server to do, as the superuser the target signs in as.
    await admin.query(`ALTER DATABASE "${gw.database}" SET statement_timeout = '5s'`);
    await admin.query(`ALTER DATABASE "${gw.database}" SET lock_timeout = '1s'`);
    await admin.end();
    control = new pg.Client({ connectionString: gw.url(), application_name: "fuzz-control" });
    control.on("error", (error) => controlErrors.push(error));
    await control.connect();
  });

  after(async () => {
    await control?.end().catch(() => undefined);
    await gw?.close();
  });

  it(`survives ${ONLY.length > 0 ? `scripts ${ONLY.join(",")}` : `${MESSAGES} random and mutated messages`} (seed ${SEED}, ${CONCURRENCY} at a time)`, async (t) => {
    const startedAt = performance.now();
    let sent = 0;
    let connections = 0;
    let nextIndex = 0;
    let finished = false;
    const failures: string[] = [];
    const expectations = new Map<string, number>();
    const endings = new Map<string, number>();
    const codes = new Map<string, number>();
    /** The longest-lived connections, to see what keeps one open. */
    const slowest: { index: number; ms: number; last: string }[] = [];
    const count = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);
    let maxRss = process.memoryUsage().rss;
    const sampler = setInterval(() => {
      maxRss = Math.max(maxRss, process.memoryUsage().rss);
    }, 100);

    const queue = ONLY.length > 0 ? [...ONLY] : undefined;
    const worker = async () => {
      for (;;) {
        const index = queue !== undefined ? queue.shift() : sent < MESSAGES ? nextIndex++ : undefined;
        if (index === undefined) return;
        const script = fuzzScript(SEED, index, options);
        const outcome = await play(gw.port, script);
        sent += outcome.sent;
        connections++;
        const e = script.expect;
        count(expectations, e.kind === "session" ? `session/${e.relay.kind}` : e.kind);
        count(endings, script.ending);
        if (outcome.last?.type === "E") {
          const f = outcome.last.fields!;
          count(codes, `${f.C}${f.R === undefined ? " (gateway)" : ""}`);
        }
        slowest.push({ index, ms: outcome.elapsedMs, last: show(outcome.last) });
        slowest.sort((a, b) => b.ms - a.ms).splice(3);
        const failure = judge(script, outcome);
        if (failure !== undefined) failures.push(`${describeScript(script)}: ${failure}`);
      }
    };
    const controlRun = controlLoop(
      gw,
      control,
      () => sent,
      () => finished,
    );
    await Promise.all(Array.from({ length: queue ? 1 : CONCURRENCY }, worker));
    finished = true;
    const controlResult = await controlRun;
    const durationMs = performance.now() - startedAt;

    // Every fuzz session ends; only the control session is left.
    const settleBy = Date.now() + 5000;
    while (gw.proxy.sessionCount > 1 && Date.now() < settleBy) await sleep(50);
    clearInterval(sampler);
    maxRss = Math.max(maxRss, process.memoryUsage().rss);

    const sorted = (map: Map<string, number>) => Object.fromEntries([...map].sort((a, b) => b[1] - a[1]));
    const result = {
      test: "fuzz",
      seed: SEED,
      messages: sent,
      connections,
      concurrency: CONCURRENCY,
      durationMs: Math.round(durationMs),
      messagesPerSecond: Math.round(sent / (durationMs / 1000)),
      controlQueries: controlResult.ok,
      controlFailures: controlResult.failures.length,
      freshSessions: controlResult.freshSessions,
      maxControlLatencyMs: Math.round(controlResult.maxLatencyMs),
      maxRssBytes: maxRss,
      sessionsLeft: gw.proxy.sessionCount,
      failures: failures.length,
      expectations: sorted(expectations),
      endings: sorted(endings),
      lastErrorCodes: sorted(codes),
      slowestConnections: slowest,
    };
    t.diagnostic(JSON.stringify(result));
    report(result);

    assert.deepEqual(
      failures.slice(0, 20),
      [],
      `${failures.length} fuzz connection(s) misbehaved; replay one with
      AGENTGATE_FUZZ_SEED=${SEED} AGENTGATE_FUZZ_ONLY=<index> node --import tsx scripts/test.ts fuzz.test`,
    );
    assert.deepEqual(controlResult.failures, [], "the control session kept working");
    assert.deepEqual(controlErrors, [], "the control session saw no error");
    assert.ok(controlResult.ok > 0, "the control session ran queries");
    assert.equal(gw.proxy.sessionCount, 1, "only the control session is left");
    assert.ok(maxRss < MAX_RSS_BYTES, `resident memory peaked at ${Math.round(maxRss / 2 ** 20)} MiB`);
    if (queue === undefined && MESSAGES >= 5000) {
      // The run reached the gateway's own checks, not just the server's.
      assert.ok(codes.has("08P01 (gateway)"), "some connection was refused for a protocol violation");
      assert.ok(codes.has("54000 (gateway)"), "some connection was refused for an oversized message");
      assert.ok(codes.has("08006 (gateway)"), "some startup timed out");
    }
  });
});

// ---- targeted cases ----------------------------------------------------------------------------------------------------

describe("protocol violations are refused with an error before the close", () => {
  let gw: TestGateway;

  before(async () => {
    gw = await startTestGateway({
      proxy: { maxMessageSize: MAX_MESSAGE_SIZE, startupTimeoutMs: STARTUP_TIMEOUT_MS },
    });
  });

  after(async () => {
    await gw?.close();
  });

  async function session(): Promise<RawClient> {
    const client = await rawConnect(gw.port);
    client.send(serialize.startup({ user: "agent", database: "app" }));
    await client.until("Z");
    return client;
  }

  async function expectFatal(client: RawClient, code: string, message?: RegExp): Promise<void> {
    const error = await client.next();
    assert.equal(error?.type, "E", `expected an ErrorResponse, got ${error?.type ?? "a close"}`);
    assert.equal(error?.fields?.S, "FATAL");
    assert.equal(error?.fields?.C, code, error?.fields?.M);
    if (message) assert.match(error?.fields?.M ?? "", message);
    assert.equal(await client.next(), undefined, "the gateway closes after the error");
  }

  async function stillServes(): Promise<void> {
    const client = new pg.Client({ connectionString: gw.url() });
    await client.connect();
    assert.deepEqual((await client.query("SELECT 1 AS one")).rows, [{ one: 1 }]);
    await client.end();
  }

  it("refuses a garbage startup packet (an HTTP request) with 08P01", async () => {
    const client = await rawConnect(gw.port);
    client.send(Buffer.from("GET / HTTP/1.1\r\nHost: db\r\n\r\n"));
    await expectFatal(client, "08P01", /invalid length of startup packet/);
  });

  it("refuses a startup packet without its terminator with 08P01", async () => {
    const client = await rawConnect(gw.port);
    client.send(startupPacket(0x30000, Buffer.from("user\0agent\0database\0app\0")));
    await expectFatal(client, "08P01", /terminator/);
  });

  it("refuses protocol 2.0 with 0A000", async () => {
    const client = await rawConnect(gw.port);
    client.send(startupMessage([["user", "agent"]], 0x20000));
    await expectFatal(client, "0A000");
  });

  it("refuses an SSLRequest of the wrong size with 08P01", async () => {
    const client = await rawConnect(gw.port);
    client.send(startupPacket(80877103, Buffer.alloc(4)));
    await expectFatal(client, "08P01");
  });

  it("closes without a word on a CancelRequest with an unknown key", async () => {
    const client = await rawConnect(gw.port);
    client.send(startupPacket(80877102, new Rng(1).bytes(8)));
    assert.equal(await client.next(), undefined);
  });

  it("ends a startup packet that never completes after startupTimeoutMs with 08006", async () => {
    const client = await rawConnect(gw.port);
    const startedAt = Date.now();
    client.send(startupMessage([["user", "agent"]]).subarray(0, 10));
    await expectFatal(client, "08006", /startup did not complete/);
    assert.ok(Date.now() - startedAt >= STARTUP_TIMEOUT_MS * 0.9);
  });

  it("refuses an unknown message type with 08P01", async () => {
    const client = await session();
    client.send(Buffer.from([0x01, 0, 0, 0, 4]));
    await expectFatal(client, "08P01", /invalid frontend message type 0x01/);
    await stillServes();
  });

  it("refuses a length word under 4 with 08P01", async () => {
    const client = await session();
    client.send(withLength(serialize.query("SELECT 1"), 3));
    await expectFatal(client, "08P01", /invalid message length 3/);
  });

  it("refuses a negative length word with 08P01", async () => {
    const client = await session();
    client.send(withLength(serialize.query("SELECT 1"), -1));
    await expectFatal(client, "08P01", /invalid message length -1/);
  });

  it("refuses a message over maxMessageSize with 54000 as soon as its header arrives", async () => {
    const client = await session();
    client.send(frontendMessage("Q", Buffer.alloc(0)).subarray(0, 1));
    const header = Buffer.alloc(4);
    header.writeInt32BE(MAX_MESSAGE_SIZE);
    client.send(header); // the body never follows: the header alone is enough to refuse
    await expectFatal(client, "54000", /over the limit/);
    await stillServes();
  });

  it("relays a message right at maxMessageSize", async () => {
    const client = await session();
    const sql = `SELECT length('${"z".repeat(MAX_MESSAGE_SIZE - 64)}')`;
    const query = serialize.query(sql);
    assert.ok(query.length <= MAX_MESSAGE_SIZE);
    client.send(query);
    const messages = await client.until("Z");
    assert.deepEqual(
      messages.map((m) => m.type),
      ["T", "D", "C", "Z"],
    );
    client.close();
  });

  it("closes without an error after the client's Terminate, as PostgreSQL does", async () => {
    const client = await session();
    client.send(serialize.end());
    const after = await client.next();
    assert.equal(after, undefined, `got ${after?.type} ${after?.fields?.C} ${after?.fields?.M}`);
  });

  it("waits for the rest of a message that promises more, and lets the client leave", async () => {
    const client = await session();
    client.send(withLength(serialize.query("SELECT 1"), 5000));
    await assert.rejects(client.next(300), /no message/);
    client.socket.end();
    assert.equal(await client.next(), undefined);
    await stillServes();
  });
});

// ---- the generator itself ----------------------------------------------------------------------------------------------

describe("fuzz generator", () => {
  const options: FuzzOptions = {
    maxMessageSize: MAX_MESSAGE_SIZE,
    database: "app",
    user: "agent",
    startupPauseBudgetMs: 400,
  };

  it("produces the same script for the same seed and index, and others for other seeds", () => {
    for (const index of [0, 1, 17, 999]) {
      const a = fuzzScript(7, index, options);
      const b = fuzzScript(7, index, options);
      assert.deepEqual(a, b);
      assert.notDeepEqual(fuzzScript(8, index, options).chunks, a.chunks);
    }
  });

  it("cuts each script into chunks that add up to its messages", () => {
    for (let index = 0; index < 300; index++) {
      const script = fuzzScript(3, index, options);
      assert.deepEqual(
        Buffer.concat(script.chunks.map((c) => c.bytes)),
        Buffer.concat(script.messages.map((m) => m.bytes)),
      );
      assert.equal(script.chunks.at(-1)?.messagesDone, script.messages.length);
    }
  });

  it("covers both phases, every expectation and the mutations the brief asks for", () => {
    const kinds = new Set<string>();
    const labels = new Set<string>();
    for (let index = 0; index < 3000; index++) {
      const script = fuzzScript(11, index, options);
      const e = script.expect;
      kinds.add(e.kind === "session" ? `session/${e.relay.kind}` : e.kind);
      for (const m of script.messages) labels.add(m.label);
    }
    for (const kind of [
      "refused",
      "cancel",
      "incomplete",
      "any",
      "session/open",
      "session/violation",
      "session/terminate",
    ]) {
      assert.ok(kinds.has(kind), `expectation ${kind}`);
    }
    const all = [...labels].join(" ");
    for (const label of [
      "random-bytes",
      "SSLRequest+size",
      "GSSENCRequest",
      "CancelRequest",
      "+bitflip",
      "+truncate",
      "+length",
      "+type",
      "garbage",
      "over the limit",
      "FunctionCall",
      "CopyData",
      "CopyFail",
      "Parse",
      "Bind",
      "Execute",
      "Flush",
      "Terminate",
    ]) {
      assert.ok(all.includes(label), `label ${label}`);
    }
  });

  it("predicts the framing verdicts the protocol prescribes", () => {
    const query = serialize.query("SELECT 1");
    assert.deepEqual(predictRelay(Buffer.concat([query, serialize.sync()]), 1024), { kind: "open" });
    assert.equal(predictRelay(withLength(query, 3), 1024).kind, "violation");
    assert.deepEqual(predictRelay(withLength(query, 2000), 1024), {
      kind: "violation",
      code: "54000",
      reason: "length 2000 over the limit at byte 0",
    });
    assert.deepEqual(predictRelay(withLength(query, 500), 1024), { kind: "open" });
    assert.equal(predictRelay(Buffer.from([0x01, 0, 0, 0, 4]), 1024).kind, "violation");
    assert.deepEqual(predictRelay(Buffer.concat([serialize.end(), Buffer.from([1, 0, 0, 0, 4])]), 1024), {
      kind: "terminate",
    });
    const start = startupMessage([
      ["user", "agent"],
      ["database", "app"],
    ]);
    assert.deepEqual(predictStartup(start, [start.length], options).expect, {
      kind: "session",
      relay: { kind: "open" },
    });
    const ssl = startupPacket(80877103);
    const sslThenStart = Buffer.concat([ssl, start]);
    assert.equal(predictStartup(sslThenStart, [8, sslThenStart.length], options).answers, 1);
    assert.equal(predictStartup(sslThenStart, [sslThenStart.length], options).expect.kind, "any");
  });
});
