import { parseArgs } from "node:util";
import { type Protocol, protocols, type Workload, workloads } from "./pgbench.ts";

export const targetNames = ["direct", "gateway", "gateway-full", "gateway-full-exempt", "pgbouncer", "pipe"] as const;
export type TargetName = (typeof targetNames)[number];

export interface BenchOptions {
  durationSeconds: number;
  rounds: number;
  scale: number;
  workloads: Workload[];
  protocols: Protocol[];
  clients: number[];
  targets: TargetName[];
}

export const usage = `usage: npm run loadtest -- [options]
  --duration <s>      seconds per pgbench run (default 10)
  --rounds <n>        runs per cell and target; the median is reported (default 3)
  --scale <n>         pgbench -i scale factor (default 10)
  --clients <list>    client counts, e.g. 1,8 (default 1,8,32)
  --only <list>       workloads and/or protocols to run: ${[...workloads, ...protocols].join(",")} (default all)
  --targets <list>    ${targetNames.join(",")} (default all; direct is always run, ratios need it)
  --help`;

export class OptionError extends Error {
  constructor(
    readonly option: string,
    reason: string,
  ) {
    super(`--${option}: ${reason}\n\n${usage}`);
    this.name = "OptionError";
  }
}

function positiveInteger(option: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1)
    throw new OptionError(option, `expected a positive integer, got "${text}"`);
  return value;
}

function list(text: string): string[] {
  return text
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "");
}

function pick<T extends string>(all: readonly T[], asked: string[]): T[] {
  const chosen = all.filter((item) => asked.includes(item));
  return chosen.length > 0 ? chosen : [...all];
}

/** Parses the command line; returns undefined when --help was asked for. */
export function parseBenchOptions(argv: string[]): BenchOptions | undefined {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      duration: { type: "string", default: "10" },
      rounds: { type: "string", default: "3" },
      scale: { type: "string", default: "10" },
      clients: { type: "string", default: "1,8,32" },
      only: { type: "string", default: "" },
      targets: { type: "string", default: targetNames.join(",") },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) return undefined;
  const only = list(values.only);
  const known: readonly string[] = [...workloads, ...protocols];
  const unknown = only.filter((item) => !known.includes(item));
  if (unknown.length > 0) throw new OptionError("only", `unknown ${unknown.join(", ")}`);
  const asked = list(values.targets);
  const unknownTargets = asked.filter((item) => !(targetNames as readonly string[]).includes(item));
  if (unknownTargets.length > 0) throw new OptionError("targets", `unknown ${unknownTargets.join(", ")}`);
  const clients = list(values.clients).map((item) => positiveInteger("clients", item));
  if (clients.length === 0) throw new OptionError("clients", "expected at least one client count");
  return {
    durationSeconds: positiveInteger("duration", values.duration),
    rounds: positiveInteger("rounds", values.rounds),
    scale: positiveInteger("scale", values.scale),
    workloads: pick(workloads, only),
    protocols: pick(protocols, only),
    clients,
    targets: targetNames.filter((name) => name === "direct" || asked.includes(name)),
  };
}
