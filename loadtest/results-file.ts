import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BenchOptions, TargetName } from "./options.ts";
import { addedLatencyTable, type Cell, fullStackTable, renderMarkdown, resultsTable } from "./report.ts";
import type { SystemInfo } from "./system-info.ts";

export interface ResultsReport {
  info: SystemInfo;
  options: BenchOptions;
  /** The command-line arguments, to repeat the run. */
  argv: string[];
  serverSettings: Record<string, string>;
  cells: Cell[];
  targets: TargetName[];
  notes: string[];
}

/** The results as Markdown, with the facts needed to compare them with another machine or another day. */
export function markdownReport(report: ResultsReport): string {
  const { info, options, cells, targets } = report;
  const settings = Object.entries(report.serverSettings)
    .map(([key, value]) => `${key}=${value}`)
    .join(", ");
  const facts: Array<[string, string]> = [
    ["date", info.date],
    ["nproc", info.nproc],
    ["CPU", info.cpuModel],
    ["kernel", info.kernel],
    ["load average at start", info.loadAverageAtStart],
    ["PostgreSQL", info.postgres],
    ["pgbench", info.pgbench],
    ["PgBouncer", info.pgbouncer],
    ["Node.js", info.node],
    ["command", ["npm run loadtest --", ...report.argv].join(" ")],
    [
      "runs",
      `${options.durationSeconds} s each, ${options.rounds} round(s), median per cell; scale ${options.scale}; ` +
        "pgbench -j = min(clients, nproc); everything on one machine over loopback",
    ],
    ["server settings", settings],
    ...report.notes.map((note): [string, string] => ["note", note]),
  ];
  const failures = cells.flatMap((cell) =>
    [...cell.errors].flatMap(([target, errors]) =>
      errors.map((error) => `- ${cell.workload} ${cell.protocol} ${cell.clients} clients, ${target}: ${error}`),
    ),
  );
  const full = fullStackTable(cells, targets);
  return [
    `# agentgate load test, ${info.date}`,
    "",
    renderMarkdown({
      header: ["", ""],
      rows: facts.map(([key, value]) => [key, value.replaceAll("|", "\\|")]),
      leftColumns: 2,
    }),
    "",
    "## Throughput, mean latency, ratio to direct, proxy CPU per transaction",
    "",
    renderMarkdown(resultsTable(cells, targets)),
    "",
    "## Mean latency added to direct at 1 client",
    "",
    cells.some((cell) => cell.clients === 1)
      ? renderMarkdown(addedLatencyTable(cells, targets))
      : "(no 1-client runs: pass --clients 1,...)",
    ...(full.rows.length > 0
      ? ["", "## Full stack: CPU per statement of each process, the audit's count", "", renderMarkdown(full)]
      : []),
    ...(failures.length > 0 ? ["", "## Failed runs", "", ...failures] : []),
    "",
  ].join("\n");
}

/** Writes `results-<timestamp>.md` into `dir` (created if needed) and returns its path. */
export function writeResultsFile(dir: string, report: ResultsReport): string {
  mkdirSync(dir, { recursive: true });
  const stamp = report.info.date.replaceAll(":", "-").replace(/\.\d+Z$/, "Z");
  const path = join(dir, `results-${stamp}.md`);
  writeFileSync(path, markdownReport(report));
  return path;
}
