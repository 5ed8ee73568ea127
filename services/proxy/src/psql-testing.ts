import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { findBinary } from "@agentgate/testkit";

/** How a psql process ended and everything it wrote. */
export interface PsqlResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Empty when stdout went to `stdoutFile`. */
  stdout: Buffer;
  stderr: Buffer;
}

export interface PsqlOptions {
  /** Written to stdin, which is then closed. Without it (and without `keepInputOpen`) stdin is /dev/null. */
  input?: string | Buffer;
  /** Leaves stdin open for `write()` and `endInput()`, for a session driven step by step. */
  keepInputOpen?: boolean;
  /** Added to the clean environment of `psqlEnv()`. */
  env?: Record<string, string>;
  cwd?: string;
  /** Sends stdout to this file instead of collecting it, for outputs too big to hold twice in memory. */
  stdoutFile?: string;
  /** Sends SIGINT (what Ctrl-C does) after this many milliseconds. */
  killAfterMs?: number;
  /** Hard limit: psql is killed and `done` rejects after this long, so a hang fails the test. Default 30 s. */
  timeoutMs?: number;
}

/** A running psql. */
export interface PsqlProcess {
  readonly child: ChildProcess;
  /** What psql has written to stdout so far (psql flushes after each result it prints). */
  stdoutSoFar(): Buffer;
  write(text: string): void;
  endInput(): void;
  /** SIGINT, as Ctrl-C in a terminal: psql sends a CancelRequest if a query is running. */
  interrupt(): void;
  /** Kills psql if it still runs; for cleanup after a failed test. */
  kill(): void;
  readonly done: Promise<PsqlResult>;
}

let psqlPath: string | undefined;

function psqlBinary(): string {
  psqlPath ??= findBinary("psql", "apt-get install -y postgresql-client");
  return psqlPath;
}

/**
 * The environment every psql gets: nothing from the developer's shell that could change what psql prints or where it
 * connects (PGHOST, PGDATABASE, a psqlrc, a pager, the locale or time zone), only what makes runs comparable.
 */
export function psqlEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: "/nonexistent",
    LC_ALL: "C.UTF-8",
    PGTZ: "UTC",
    PSQLRC: "/dev/null",
    PGPASSFILE: "/nonexistent/.pgpass",
    PAGER: "",
    PSQL_PAGER: "",
    PGCONNECT_TIMEOUT: "10",
    ...extra,
  };
}

/** Starts psql against `url` (a connection URL, always the last argument) with a clean environment. */
export function spawnPsql(url: string, args: readonly string[], options: PsqlOptions = {}): PsqlProcess {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const stdin = options.input !== undefined || options.keepInputOpen ? "pipe" : "ignore";
  const stdoutFd = options.stdoutFile === undefined ? undefined : openSync(options.stdoutFile, "w");
  let child: ChildProcess;
  try {
    child = spawn(psqlBinary(), ["-X", "-P", "pager=off", ...args, url], {
      cwd: options.cwd,
      env: psqlEnv(options.env),
      stdio: [stdin, stdoutFd ?? "pipe", "pipe"],
    });
  } finally {
    if (stdoutFd !== undefined) closeSync(stdoutFd);
  }
  const stdout: Buffer[] = [];
  const stderr: Buffer[] = [];
  child.stdout?.on("data", (chunk: Buffer) => stdout.push(chunk));
  child.stderr?.on("data", (chunk: Buffer) => stderr.push(chunk));
  // psql may exit before reading all its input (an error, a signal); that is its answer, not ours to fail on.
  child.stdin?.on("error", () => undefined);
  const running = () => child.exitCode === null && child.signalCode === null;

  const timers: NodeJS.Timeout[] = [];
  const done = new Promise<PsqlResult>((resolve, reject) => {
    let timedOut = false;
    timers.push(
      setTimeout(() => {
        timedOut = true;
        child.kill("SIGKILL");
      }, timeoutMs),
    );
    if (options.killAfterMs !== undefined) timers.push(setTimeout(() => child.kill("SIGINT"), options.killAfterMs));
    child.once("error", (error) => {
      for (const timer of timers) clearTimeout(timer);
      reject(error);
    });
    // "close", not "exit": by then both pipes are drained.
    child.once("close", (code, signal) => {
      for (const timer of timers) clearTimeout(timer);
      const result = { code, signal, stdout: Buffer.concat(stdout), stderr: Buffer.concat(stderr) };
      if (!timedOut) {
        resolve(result);
        return;
      }
      reject(
        new Error(
          `psql ${args.join(" ")} did not finish within ${timeoutMs} ms and was killed\n` +
            `stdout: ${tail(result.stdout)}\nstderr: ${tail(result.stderr)}`,
        ),
      );
    });
  });

  if (options.input !== undefined) child.stdin?.end(options.input);
  return {
    child,
    done,
    stdoutSoFar: () => Buffer.concat(stdout),
    write: (text) => {
      child.stdin?.write(text);
    },
    endInput: () => {
      child.stdin?.end();
    },
    interrupt: () => {
      if (running()) child.kill("SIGINT");
    },
    kill: () => {
      if (running()) child.kill("SIGKILL");
    },
  };
}

/** Runs psql to the end: `runPsql(url, ["-c", "SELECT 1"])`. */
export function runPsql(url: string, args: readonly string[], options: PsqlOptions = {}): Promise<PsqlResult> {
  return spawnPsql(url, args, options).done;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Bytes as text, refusing anything that is not valid UTF-8: then two texts are equal exactly when their bytes are,
 * and string comparisons (which give readable diffs) are byte-for-byte comparisons.
 */
export function text(bytes: Buffer): string {
  return utf8.decode(bytes);
}

function tail(bytes: Buffer): string {
  const s = bytes.toString("utf8");
  return JSON.stringify(s.length > 2000 ? `…${s.slice(-2000)}` : s);
}
