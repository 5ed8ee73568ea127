import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second, the unit of utime and stime in /proc/<pid>/stat. */
export function clockTicksPerSecond(): number {
  const ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
  if (!Number.isInteger(ticks) || ticks <= 0) throw new Error(`getconf CLK_TCK gave ${ticks}`);
  return ticks;
}

/** utime + stime of one process from the text of /proc/<pid>/stat. */
export function parseStatCpuTicks(stat: string): number {
  // The command name (field 2) may contain spaces and parentheses; fields after the last ")" are fixed.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state), so utime (field 14) and stime (field 15) are at 11 and 12.
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`cannot read CPU times from: ${stat}`);
  return utime + stime;
}

function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const text = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").trim();
    if (text !== "") children.push(...text.split(" ").map(Number));
  }
  return children;
}

/**
 * CPU ticks used so far by a process and its live descendants, so a gateway that forks workers is counted whole.
 * Processes that vanish while being read are skipped.
 */
export function processTreeCpuTicks(pid: number): number {
  try {
    const own = parseStatCpuTicks(readFileSync(`/proc/${pid}/stat`, "utf8"));
    return childrenOf(pid).reduce((sum, child) => sum + processTreeCpuTicks(child), own);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return 0;
    throw error;
  }
}
