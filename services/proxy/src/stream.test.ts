import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { type FreshDatabase, findBinary, freshDatabase, spawnServer } from "@agentgate/testkit";
import { MessageFramer } from "@agentgate/wire";
import pg from "pg";
import { serialize } from "pg-protocol";

// Scaled for CI (about 200 MB); the soak (loadtest/soak.ts) streams 2,000,000 rows, about 2 GB.
const ROWS = envInt("AGENTGATE_STREAM_ROWS", 200_000);
/** How long the slow reader reads nothing at all. */
const STALL_MS = envInt("AGENTGATE_STREAM_STALL_MS", 3000);
const ROW_BYTES = 1000;
const RSS_LIMIT_BYTES = 200 * 1024 * 1024;
/** What a stalled reader may cost the gateway: socket buffers and a chunk or two, not the result. */
const STALL_GROWTH_LIMIT_BYTES = 32 * 1024 * 1024;
const SQL = `SELECT repeat('x', ${ROW_BYTES}) FROM generate_series(1, ${ROWS})`;
const CLI = fileURLToPath(new URL("../../cli/bin/agentgate.js", import.meta.url));
const MiB = 1024 * 1024;

function envInt(name: string, fallback: number): number {
  const value = process.env[name];
  if (value === undefined || value === "") return fallback;
  const n = Number(value.replaceAll("_", ""));
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got ${value}`);
  return n;
}

/** Appends one JSON line of results for loadtest/soak.ts when AGENTGATE_SOAK_RESULTS names a file. */
function report(result: Record<string, unknown>): void {
  const file = process.env.AGENTGATE_SOAK_RESULTS;
  if (file) appendFileSync(file, `${JSON.stringify(result)}\n`);
}

const mib = (bytes: number) => Math.round((bytes / MiB) * 10) / 10;

// ---- the gateway as its own process --------------------------------------------------------------------------------

interface GatewayProcess {
  readonly pid: number;
  readonly port: number;
  readonly child: ChildProcess;
  /** The last lines the gateway logged, for failure messages. */
  logTail(): string;
  stop(): Promise<void>;
}

/** Starts `agentgate proxy` with a config in a temp dir, listening on a port it picks and logs. */
async function startGatewayProcess(targetUrl: string): Promise<GatewayProcess> {
  const dir = mkdtempSync(join(tmpdir(), "agentgate-stream-"));
  const config = join(dir, "agentgate.yaml");
  const yaml = ["proxy:", '  listen: "127.0.0.1:0"', "targets:", "  app:", `    url: ${JSON.stringify(targetUrl)}`, ""];
  writeFileSync(config, yaml.join("\n"), { mode: 0o600 });
  const child = spawnServer(process.execPath, [CLI, "proxy", "--config", config], {
    unprivileged: false,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  const keep = (line: string) => {
    lines.push(line);
    if (lines.length > 50) lines.shift();
  };
  const logTail = () => lines.join("\n");
  createInterface({ input: child.stderr! }).on("line", keep);
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the gateway did not listen within 30 s:\n${logTail()}`)), 30_000);
    child.once("exit", (code, signal) => reject(new Error(`the gateway exited (${code ?? signal}):\n${logTail()}`)));
    createInterface({ input: child.stdout! }).on("line", (line) => {
      keep(line);
      try {
        const entry = JSON.parse(line) as { msg?: string; address?: string };
        if (entry.msg === "proxy listening" && entry.address) {
          clearTimeout(timer);
          resolve(Number(entry.address.slice(entry.address.lastIndexOf(":") + 1)));
        }
      } catch {
        // not a log line of ours
      }
    });
  });
  const pid = child.pid!;
  assert.match(readFileSync(`/proc/${pid}/cmdline`, "utf8"), /agentgate\.js/, "the sampled pid is the gateway's");
  return {
    pid,
    port,
    child,
    logTail,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        const kill = setTimeout(() => child.kill("SIGKILL"), 5000);
        await exited;
        clearTimeout(kill);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Samples a process's resident memory (VmRSS) every 100 ms; also reads the kernel's own peak (VmHWM). */
function memoryOf(pid: number) {
  const field = (name: string): number => {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const match = new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status);
    return match ? Number(match[1]) * 1024 : 0;
  };
  // Resets VmHWM so the peak belongs to this measurement (Linux clear_refs "5"); harmless when not allowed.
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
  } catch {
    // keep the peak since start
  }
  let max = field("VmRSS");
  const timer = setInterval(() => {
    max = Math.max(max, field("VmRSS"));
  }, 100);
  return {
    current: () => field("VmRSS"),
    /** The largest of the samples and the kernel's peak. */
    stop(): { maxRss: number; peak: number } {
      clearInterval(timer);
      max = Math.max(max, field("VmRSS"));
      return { maxRss: max, peak: Math.max(max, field("VmHWM")) };
    },
  };
}

// ---- a protocol-level client that counts what it reads ---------------------------------------------------------------

interface StreamResult {
  rows: number;
  /** Bytes of protocol messages received after the query was sent. */
  bytes: number;
  badRows: number;
  tag: string | undefined;
  error: string | undefined;
  ms: number;
}

/** Runs `sql` as a simple query through the gateway, checking every DataRow and keeping none of them. */
function streamQuery(port: number, sql: string, onQuerySent?: (socket: Socket) => void): Promise<StreamResult> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, noDelay: true });
    const framer = new MessageFramer(1 << 30);
    const result: StreamResult = { rows: 0, bytes: 0, badRows: 0, tag: undefined, error: undefined, ms: 0 };
    let querying = false;
    let startedAt = 0;
    const onMessage = (type: number, message: Buffer) => {
      if (querying) result.bytes += message.length;
      switch (type) {
        case 0x44: // DataRow: one column of ROW_BYTES bytes
          result.rows++;
          if (
            message.length !== 11 + ROW_BYTES ||
            message.readInt16BE(5) !== 1 ||
            message.readInt32BE(7) !== ROW_BYTES
          ) {
            result.badRows++;
          }
          return;
        case 0x43: // CommandComplete
          result.tag = message.toString("utf8", 5, message.length - 1);
          return;
        case 0x45:
          result.error = message.toString("utf8", 5).replaceAll("\0", " ").trim();
          return;
        case 0x5a: // ReadyForQuery
          if (!querying) {
            querying = true;
            startedAt = performance.now();
            socket.write(serialize.query(sql));
            onQuerySent?.(socket);
            return;
          }
          result.ms = performance.now() - startedAt;
          socket.end(serialize.end());
          resolve(result);
      }
    };
    socket.on("data", (chunk: Buffer) => framer.push(chunk, onMessage));
    socket.on("error", reject);
    socket.on("close", () => reject(new Error(`connection closed after ${result.rows} rows (${result.error})`)));
    socket.once("connect", () => socket.write(serialize.startup({ user: "agent", database: "app" })));
  });
}

function psqlEnv(port: number): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PGHOST: "127.0.0.1",
    PGPORT: String(port),
    PGUSER: "agent",
    PGDATABASE: "app",
    PGSSLMODE: "disable",
    PGGSSENCMODE: "disable",
    PGCONNECT_TIMEOUT: "10",
  };
}

/** psql with FETCH_COUNT (a cursor, so psql itself holds one batch), its output counted and thrown away. */
function psqlCount(psql: string, port: number, sql: string): Promise<{ bytes: number; lines: number; ms: number }> {
  return new Promise((resolve, reject) => {
    const startedAt = performance.now();
    const child = spawn(psql, ["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-v", "FETCH_COUNT=20000", "-c", sql], {
      env: psqlEnv(port),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let bytes = 0;
    let lines = 0;
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
      for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) lines++;
    });
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.once("error", reject);
    child.once("close", (code) => {
      if (code !== 0) reject(new Error(`psql exited with ${code}: ${stderr}`));
      else resolve({ bytes, lines, ms: performance.now() - startedAt });
    });
  });
}

// ---- the tests -----------------------------------------------------------------------------------------------------

describe(`a ${mib(ROWS * ROW_BYTES)} MiB result through the gateway process`, () => {
  let db: FreshDatabase;
  let gateway: GatewayProcess;
  const timeout = 120_000 + ROWS / 10;

  before(async () => {
    db = await freshDatabase();
    gateway = await startGatewayProcess(db.url);
  });

  after(async () => {
    await gateway?.stop();
    await db?.drop();
  });

  function assertAlive() {
    assert.equal(gateway.child.exitCode, null, `the gateway exited:\n${gateway.logTail()}`);
    assert.equal(gateway.child.signalCode, null, `the gateway was killed:\n${gateway.logTail()}`);
  }

  it(`streams ${ROWS} rows of ${ROW_BYTES} bytes to a fast reader with the gateway under 200 MB`, {
    timeout,
  }, async (t) => {
    const memory = memoryOf(gateway.pid);
    const baseline = memory.current();
    const result = await streamQuery(gateway.port, SQL);
    const { maxRss, peak } = memory.stop();
    const summary = {
      test: "stream-select",
      client: "raw simple query",
      rows: result.rows,
      bytes: result.bytes,
      durationMs: Math.round(result.ms),
      mibPerSecond: Math.round(mib(result.bytes) / (result.ms / 1000)),
      baselineRssMiB: mib(baseline),
      maxRssMiB: mib(maxRss),
      peakRssMiB: mib(peak),
    };
    t.diagnostic(JSON.stringify(summary));
    report(summary);
    assert.equal(result.error, undefined);
    assert.equal(result.rows, ROWS, "every row arrived");
    assert.equal(result.badRows, 0, "every row has one column of 1000 bytes");
    assert.equal(result.tag, `SELECT ${ROWS}`);
    assert.ok(peak < RSS_LIMIT_BYTES, `the gateway's resident memory peaked at ${mib(peak)} MiB`);
    assertAlive();
  });

  it(`streams the same result to psql (FETCH_COUNT) with the gateway under 200 MB`, { timeout }, async (t) => {
    const psql = findBinary("psql", "apt-get install -y postgresql-client");
    const memory = memoryOf(gateway.pid);
    const result = await psqlCount(psql, gateway.port, SQL);
    const { maxRss, peak } = memory.stop();
    const summary = {
      test: "stream-psql",
      client: "psql FETCH_COUNT=20000",
      rows: result.lines,
      bytes: result.bytes,
      durationMs: Math.round(result.ms),
      mibPerSecond: Math.round(mib(result.bytes) / (result.ms / 1000)),
      maxRssMiB: mib(maxRss),
      peakRssMiB: mib(peak),
    };
    t.diagnostic(JSON.stringify(summary));
    report(summary);
    assert.equal(result.lines, ROWS, "psql printed every row");
    assert.equal(result.bytes, ROWS * (ROW_BYTES + 1), "each row is 1000 x's and a newline");
    assert.ok(peak < RSS_LIMIT_BYTES, `the gateway's resident memory peaked at ${mib(peak)} MiB`);
    assertAlive();
  });

  it("holds back a server whose reader stalls, and keeps serving other sessions", { timeout }, async (t) => {
    const memory = memoryOf(gateway.pid);
    const other = new pg.Client({ connectionString: `postgresql://agent@127.0.0.1:${gateway.port}/app` });
    await other.connect();
    const direct = new pg.Client({ connectionString: db.url });
    await direct.connect();

    let reader: Socket | undefined;
    let querySent!: () => void;
    const sent = new Promise<void>((resolve) => {
      querySent = resolve;
    });
    const streaming = streamQuery(gateway.port, SQL, (socket) => {
      socket.pause(); // read nothing: the kernel buffers fill, then the gateway must stop reading the server
      reader = socket;
      querySent();
    });
    await sent;
    const stallStart = memory.current();

    // While the reader stalls: the other session answers, and the server is blocked writing (ClientWrite).
    const latencies: number[] = [];
    const waits = new Set<string>();
    const stallEnds = Date.now() + STALL_MS;
    while (Date.now() < stallEnds) {
      const started = performance.now();
      const { rows } = await other.query<{ n: number }>("SELECT $1::int AS n", [latencies.length]);
      assert.equal(rows[0]?.n, latencies.length);
      latencies.push(performance.now() - started);
      const activity = await direct.query<{ wait_event: string | null }>(
        "SELECT wait_event FROM pg_stat_activity WHERE datname = current_database() AND query = $1",
        [SQL],
      );
      for (const row of activity.rows) waits.add(row.wait_event ?? "none");
      await sleep(100);
    }
    const stallEnd = memory.current();

    // Then it reads in short bursts with long gaps, then to the end.
    for (let i = 0; i < 10; i++) {
      reader!.resume();
      await sleep(20);
      reader!.pause();
      await sleep(200);
    }
    reader!.resume();
    const result = await streaming;
    await other.end();
    await direct.end();
    const { maxRss, peak } = memory.stop();
    const summary = {
      test: "stream-slow-reader",
      rows: result.rows,
      stallMs: STALL_MS,
      serverWaitsDuringStall: [...waits],
      rssAtStallStartMiB: mib(stallStart),
      rssAtStallEndMiB: mib(stallEnd),
      maxRssMiB: mib(maxRss),
      peakRssMiB: mib(peak),
      otherSessionQueries: latencies.length,
      otherSessionMaxLatencyMs: Math.round(Math.max(...latencies)),
    };
    t.diagnostic(JSON.stringify(summary));
    report(summary);
    assert.ok(waits.has("ClientWrite"), `the server was held back (waits seen: ${[...waits].join(", ")})`);
    assert.ok(
      stallEnd - stallStart < STALL_GROWTH_LIMIT_BYTES,
      `a stalled reader cost the gateway ${mib(stallEnd - stallStart)} MiB`,
    );
    assert.ok(Math.max(...latencies) < 1000, "the other session answered within a second");
    assert.equal(result.rows, ROWS, "every row arrived in the end");
    assert.equal(result.badRows, 0);
    assert.ok(peak < RSS_LIMIT_BYTES, `the gateway's resident memory peaked at ${mib(peak)} MiB`);
    assertAlive();
  });
});
