import { spawn } from "node:child_process";

export const workloads = ["select-only", "tpcb"] as const;
export type Workload = (typeof workloads)[number];

export const protocols = ["simple", "extended", "prepared"] as const;
export type Protocol = (typeof protocols)[number];

/** Where pgbench connects; the password is omitted for targets that need none. */
export interface Endpoint {
  host: string;
  port: number;
  user: string;
  dbname: string;
  password?: string;
}

/** The numbers pgbench prints at the end of a run. */
export interface PgbenchResult {
  tps: number;
  latencyMs: number;
  transactions: number;
  failed: number;
}

export interface PgbenchRun {
  /** Path of the pgbench binary. */
  pgbench: string;
  endpoint: Endpoint;
  workload: Workload;
  protocol: Protocol;
  clients: number;
  threads: number;
  durationSeconds: number;
  /** Run this many transactions per client instead of for durationSeconds (warm-up runs). */
  transactions?: number;
  signal?: AbortSignal;
}

export class PgbenchError extends Error {
  constructor(
    message: string,
    readonly output: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = "PgbenchError";
  }
}

function numberAfter(text: string, pattern: RegExp): number | undefined {
  const match = pattern.exec(text);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

/** Reads the summary block of `pgbench` (PostgreSQL 13+ wording); throws when tps or latency is missing. */
export function parsePgbenchOutput(text: string): PgbenchResult {
  const tps = numberAfter(text, /^tps = ([\d.]+) \(without initial connection time\)$/m);
  const latencyMs = numberAfter(text, /^latency average = ([\d.]+) ms$/m);
  const transactions = numberAfter(text, /^number of transactions actually processed: (\d+)/m);
  if (tps === undefined || latencyMs === undefined || transactions === undefined) {
    throw new PgbenchError("pgbench output has no tps, latency average or transaction count", text);
  }
  const failed = numberAfter(text, /^number of failed transactions: (\d+)/m) ?? 0;
  return { tps, latencyMs, transactions, failed };
}

/** The pgbench arguments for one run; `-n` because the harness vacuums directly, the same way for every target. */
export function pgbenchArgs(run: PgbenchRun): string[] {
  const { endpoint } = run;
  return [
    ...(run.workload === "select-only" ? ["-S"] : []),
    "-n",
    `--protocol=${run.protocol}`,
    `--client=${run.clients}`,
    `--jobs=${run.threads}`,
    run.transactions === undefined ? `--time=${run.durationSeconds}` : `--transactions=${run.transactions}`,
    `--host=${endpoint.host}`,
    `--port=${endpoint.port}`,
    `--username=${endpoint.user}`,
    endpoint.dbname,
  ];
}

/** Environment for libpq tools: no TLS on any path so every target is compared on the same footing. */
export function libpqEnv(endpoint: Endpoint): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PGSSLMODE: "disable", PGCONNECT_TIMEOUT: "10" };
  delete env.PGPASSWORD;
  if (endpoint.password !== undefined) env.PGPASSWORD = endpoint.password;
  return env;
}

export interface CommandOutput {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, collecting its output; rejects only when it cannot be started or is aborted. */
export function runCommand(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  signal?: AbortSignal,
): Promise<CommandOutput> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ["ignore", "pipe", "pipe"], signal });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Runs pgbench once and returns its summary; a non-zero exit (clients aborted) is an error. */
export async function runPgbench(run: PgbenchRun): Promise<PgbenchResult> {
  const { code, stdout, stderr } = await runCommand(run.pgbench, pgbenchArgs(run), libpqEnv(run.endpoint), run.signal);
  const output = `${stdout}\n${stderr}`.trim();
  if (code !== 0) throw new PgbenchError(`pgbench exited with code ${code}`, output);
  return parsePgbenchOutput(stdout);
}

/** `pgbench -i -s <scale>`: creates and fills the pgbench tables. */
export async function initPgbench(
  pgbench: string,
  endpoint: Endpoint,
  scale: number,
  signal?: AbortSignal,
): Promise<void> {
  const args = ["-i", `--scale=${scale}`, "--quiet", `--host=${endpoint.host}`, `--port=${endpoint.port}`];
  args.push(`--username=${endpoint.user}`, endpoint.dbname);
  const { code, stdout, stderr } = await runCommand(pgbench, args, libpqEnv(endpoint), signal);
  if (code !== 0) throw new PgbenchError(`pgbench -i exited with code ${code}`, `${stdout}\n${stderr}`.trim());
}
