import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { loadavg, release } from "node:os";

/** The facts a reader needs to compare two results files. */
export interface SystemInfo {
  date: string;
  nproc: string;
  cpuModel: string;
  kernel: string;
  /** 1, 5 and 15 minute load averages when the run started: other work on the machine makes numbers noisy. */
  loadAverageAtStart: string;
  node: string;
  postgres: string;
  pgbench: string;
  pgbouncer: string;
}

function firstLine(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: "utf8" }).split("\n")[0]?.trim() ?? "unknown";
  } catch {
    return "unknown";
  }
}

function cpuModel(): string {
  const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
  return match?.[1]?.trim() ?? "unknown";
}

/** The machine's 1, 5 and 15 minute load averages, e.g. "0.12 0.30 0.25". */
export function loadAverage(): string {
  return loadavg()
    .map((load) => load.toFixed(2))
    .join(" ");
}

export function systemInfo(
  loadAverageAtStart: string,
  versions: { postgres: string; pgbench: string; pgbouncer: string },
): SystemInfo {
  return {
    date: new Date().toISOString(),
    nproc: firstLine("nproc", []),
    cpuModel: cpuModel(),
    kernel: `Linux ${release()}`,
    loadAverageAtStart,
    node: process.version,
    ...versions,
  };
}

export function versionOf(binary: string): string {
  return firstLine(binary, ["--version"]);
}
