// The soak: the proxy's fuzz and large-result tests at full size (100,000 hostile messages; a 2 GB result), run
// through the same test files CI runs scaled down, then one summary of the numbers. Usage: loadtest/SOAK.md.
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { makeTempDir } from "./processes.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const FUZZ_FILE = "services/proxy/src/fuzz.test.ts";
const STREAM_FILE = "services/proxy/src/stream.test.ts";

const USAGE = `usage: node --import tsx loadtest/soak.ts [options]

  --messages <n>     fuzz messages (default 100000)
  --concurrency <n>  fuzz connections at a time (default 8)
  --seed <n>         fuzz seed (default: the test's own)
  --rows <n>         rows of 1000 bytes in the large result (default 2000000, about 2 GB)
  --only <part>      fuzz or stream (default both)
`;

interface Part {
  name: "fuzz" | "stream";
  file: string;
  env: Record<string, string>;
}

interface PartRun {
  part: Part;
  exitCode: number;
  durationMs: number;
}

type Result = Record<string, unknown> & { test: string };

function positive(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value.replaceAll("_", ""));
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got ${value}`);
  return n;
}

/** Runs one test file through scripts/test.ts (its own throwaway PostgreSQL), output passed through. */
function runPart(part: Part, resultsFile: string): Promise<PartRun> {
  const startedAt = performance.now();
  process.stderr.write(
    `\n== soak: ${part.name} (${Object.entries(part.env)
      .map(([k, v]) => `${k}=${v}`)
      .join(" ")})\n`,
  );
  const child = spawn(process.execPath, ["--import", "tsx", "scripts/test.ts", part.file], {
    cwd: root,
    env: { ...process.env, ...part.env, AGENTGATE_SOAK_RESULTS: resultsFile },
    stdio: ["ignore", "inherit", "inherit"],
  });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on("SIGINT", forward);
  process.on("SIGTERM", forward);
  return new Promise((resolve) => {
    child.once("exit", (code, signal) => {
      process.off("SIGINT", forward);
      process.off("SIGTERM", forward);
      resolve({ part, exitCode: code ?? (signal ? 1 : 0), durationMs: performance.now() - startedAt });
    });
  });
}

const n = (value: unknown) => (typeof value === "number" ? value.toLocaleString("en-US") : String(value));
const mib = (bytes: unknown) => (typeof bytes === "number" ? (bytes / 2 ** 20).toFixed(1) : "?");
const seconds = (ms: unknown) => (typeof ms === "number" ? (ms / 1000).toFixed(1) : "?");

function fuzzLines(r: Result): string[] {
  return [
    "fuzz (in-process gateway, maxMessageSize 1 MiB, startupTimeoutMs 1000)",
    `  messages sent            ${n(r.messages)} over ${n(r.connections)} connections, ${n(r.concurrency)} at a time, seed ${r.seed}`,
    `  duration                 ${seconds(r.durationMs)} s (${n(r.messagesPerSecond)} messages/s)`,
    `  misbehaving connections  ${n(r.failures)} (hangs, missing or wrong errors, unframed output)`,
    `  control session          ${n(r.controlQueries)} checks OK, ${n(r.controlFailures)} failed, max latency ${n(r.maxControlLatencyMs)} ms, ${n(r.freshSessions)} fresh sessions`,
    `  sessions left            ${n(r.sessionsLeft)} (the control session)`,
    `  max RSS                  ${mib(r.maxRssBytes)} MiB (test process: gateway and fuzz clients together)`,
    `  expectations             ${JSON.stringify(r.expectations)}`,
    `  last error codes         ${JSON.stringify(r.lastErrorCodes)}`,
  ];
}

function streamLines(results: Result[]): string[] {
  const lines = ["stream (gateway as its own process: node services/cli/bin/agentgate.js proxy)"];
  for (const r of results) {
    if (r.test === "stream-slow-reader") {
      lines.push(
        `  slow reader              ${n(r.rows)} rows; stalled ${n(r.stallMs)} ms: server waits ${JSON.stringify(r.serverWaitsDuringStall)}, gateway RSS ${r.rssAtStallStartMiB} → ${r.rssAtStallEndMiB} MiB; peak ${r.peakRssMiB} MiB; other session ${n(r.otherSessionQueries)} queries, max ${n(r.otherSessionMaxLatencyMs)} ms`,
      );
    } else {
      lines.push(
        `  ${String(r.client).padEnd(24)} ${n(r.rows)} rows, ${mib(r.bytes)} MiB in ${seconds(r.durationMs)} s (${n(r.mibPerSecond)} MiB/s); gateway RSS max ${r.maxRssMiB} MiB, peak (VmHWM) ${r.peakRssMiB} MiB`,
      );
    }
  }
  return lines;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      messages: { type: "string" },
      concurrency: { type: "string" },
      seed: { type: "string" },
      rows: { type: "string" },
      only: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.only !== undefined && values.only !== "fuzz" && values.only !== "stream") {
    process.stderr.write(`--only must be fuzz or stream\n${USAGE}`);
    return 2;
  }
  const messages = positive("messages", values.messages, 100_000);
  const rows = positive("rows", values.rows, 2_000_000);
  const fuzzEnv: Record<string, string> = {
    AGENTGATE_FUZZ_MESSAGES: String(messages),
    AGENTGATE_FUZZ_CONCURRENCY: String(positive("concurrency", values.concurrency, 8)),
  };
  if (values.seed !== undefined) fuzzEnv.AGENTGATE_FUZZ_SEED = String(positive("seed", values.seed, 1));
  const parts: Part[] = [
    { name: "fuzz" as const, file: FUZZ_FILE, env: fuzzEnv },
    { name: "stream" as const, file: STREAM_FILE, env: { AGENTGATE_STREAM_ROWS: String(rows) } },
  ].filter((part) => values.only === undefined || values.only === part.name);

  const dir = makeTempDir("agentgate-soak-");
  const resultsFile = join(dir.path, "results.jsonl");
  writeFileSync(resultsFile, "");
  const date = new Date().toISOString();
  const load = loadavg().map((l) => l.toFixed(2));
  // One part after the other: the stream's throughput and memory figures should not share the CPUs with the fuzz.
  const runs: PartRun[] = [];
  for (const part of parts) runs.push(await runPart(part, resultsFile));
  const results = readFileSync(resultsFile, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Result);
  dir.remove();

  const lines = [
    `agentgate soak, ${date}: ${availableParallelism()} CPUs, load average at start ${load.join(" ")}, Node.js ${process.version}`,
    "",
  ];
  for (const run of runs) {
    const verdict = run.exitCode === 0 ? "PASS" : `FAIL (exit ${run.exitCode})`;
    lines.push(`${run.part.name}: ${verdict} in ${seconds(run.durationMs)} s, ${run.part.file}`);
  }
  lines.push("");
  const fuzz = results.find((r) => r.test === "fuzz");
  if (fuzz) lines.push(...fuzzLines(fuzz), "");
  const stream = results.filter((r) => r.test.startsWith("stream-"));
  if (stream.length > 0) lines.push(...streamLines(stream), "");
  const text = lines.join("\n");
  process.stdout.write(`\n${text}`);

  const outDir = fileURLToPath(new URL("./out/", import.meta.url));
  mkdirSync(outDir, { recursive: true });
  const outFile = join(outDir, `soak-${date.replace(/[:.]/g, "-").replace(/-\d{3}Z$/, "Z")}.txt`);
  writeFileSync(outFile, `${text}\nraw results:\n${results.map((r) => JSON.stringify(r)).join("\n")}\n`);
  process.stdout.write(`report: ${outFile}\n`);
  return runs.every((run) => run.exitCode === 0) ? 0 : 1;
}

process.exitCode = await main();
