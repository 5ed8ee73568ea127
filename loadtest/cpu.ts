import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { basename } from "node:path";

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

/** The live children of a process, from /proc/<pid>/task/<tid>/children. */
export function childrenOf(pid: number): number[] {
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

/** Whether a command line (argv) is `binary` listening on `port` (`-p PORT` or `--port PORT`, as nats-server takes). */
export function isServerOnPort(argv: readonly string[], binary: string, port: number): boolean {
  if (argv[0] === undefined || basename(argv[0]) !== binary) return false;
  return argv.some((arg, i) => (arg === "-p" || arg === "--port") && argv[i + 1] === String(port));
}

/**
 * The pid of the child of `parent` that is `binary` on `port`: for servers the test kit starts without telling their
 * pid (nats-server). The test kit's setpriv wrapper execs the server, so the child's pid is the server's.
 */
export function childServerPid(parent: number, binary: string, port: number): number {
  for (const pid of childrenOf(parent)) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8")
        .split("\0")
        .filter((arg) => arg !== "");
      if (isServerOnPort(argv, binary, port)) return pid;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    }
  }
  throw new Error(`no child of process ${parent} is ${binary} on port ${port}`);
}
