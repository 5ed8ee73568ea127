import type { ChildProcess } from "node:child_process";
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { setTimeout as delay } from "node:timers/promises";
import { TestkitError } from "./errors.ts";
import { type SpawnServerOptions, spawnServer } from "./unprivileged.ts";

/** How a child process ended; `error` is set when it could not be spawned at all. */
export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  error?: Error;
}

const exits = new WeakMap<ChildProcess, Promise<ChildExit>>();

/** Resolves when the child has ended. Call it right after spawning so no exit event is missed. */
export function childExit(child: ChildProcess): Promise<ChildExit> {
  let exit = exits.get(child);
  if (exit === undefined) {
    exit = new Promise((resolve) => {
      child.once("exit", (code, signal) => resolve({ code, signal }));
      child.once("error", (error) => resolve({ code: null, signal: null, error }));
    });
    exits.set(child, exit);
  }
  return exit;
}

export function isRunning(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

/** Sends `signal`, escalates to SIGKILL after `graceMs`, and resolves once the child is gone. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals, graceMs = 10_000): Promise<void> {
  const exit = childExit(child);
  if (!isRunning(child)) return;
  child.kill(signal);
  // The timer also keeps the event loop alive while we wait for an unref'd child.
  const ac = new AbortController();
  const timedOut = delay(graceMs, true, { signal: ac.signal }).catch(() => false);
  const killed = await Promise.race([exit.then(() => false), timedOut]);
  ac.abort();
  if (killed && isRunning(child)) child.kill("SIGKILL");
  await exit;
}

/** Collects a short-lived child's output and rejects with that output when it fails. */
export async function runToCompletion(child: ChildProcess, label: string): Promise<string> {
  let output = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    output += chunk;
  });
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    output += chunk;
  });
  const exit = await childExit(child);
  if (exit.error !== undefined) {
    throw new TestkitError("command_failed", `${label} could not be started: ${exit.error.message}`, {
      cause: exit.error,
    });
  }
  if (exit.code !== 0) {
    const how = exit.signal === null ? `exit code ${exit.code}` : `signal ${exit.signal}`;
    throw new TestkitError("command_failed", `${label} failed with ${how}:\n${lastLines(output)}`);
  }
  return output;
}

/** Size of a file in bytes, 0 when it does not exist yet; used to read only what a new run logged. */
export function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** The text a log file gained since `offset`. */
export function readFrom(path: string, offset: number): string {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch {
    return "";
  }
  try {
    const length = Math.max(0, fileSize(path) - offset);
    const buffer = Buffer.alloc(length);
    const read = readSync(fd, buffer, 0, length, offset);
    return buffer.subarray(0, read).toString("utf8");
  } finally {
    closeSync(fd);
  }
}

export function lastLines(text: string, count = 25): string {
  return text.trimEnd().split("\n").slice(-count).join("\n");
}

export { delay };

/**
 * Starts a server whose output goes to a log file rather than a pipe: no reader has to keep up, and the child can be
 * unref'd so it never holds the event loop open.
 */
export function spawnLogged(
  binary: string,
  args: string[],
  logPath: string,
  options: Omit<SpawnServerOptions, "stdio"> = {},
): ChildProcess {
  const log = openSync(logPath, "a");
  try {
    const child = spawnServer(binary, args, { ...options, stdio: ["ignore", log, log] });
    child.unref();
    return child;
  } finally {
    closeSync(log);
  }
}
