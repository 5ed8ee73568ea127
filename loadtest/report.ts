import { type AuditCount, statementsPerTransaction } from "./full-config.ts";
import type { FullComponent } from "./gateway-full.ts";
import type { TargetName } from "./options.ts";
import type { PgbenchResult, Protocol, Workload } from "./pgbench.ts";

/** One pgbench run against one target, with the CPU the target's process used during it when known. */
export interface Sample extends PgbenchResult {
  cpuMicrosPerTxn?: number;
  /** gateway-full*: CPU µs per transaction of each process of the stack (proxy included). */
  components?: Partial<Record<FullComponent, number>>;
  /** gateway-full*: what the audit stored for the run. */
  audit?: AuditCount;
}

/** A workload × protocol × clients combination: every run of every target. */
export interface Cell {
  workload: Workload;
  protocol: Protocol;
  clients: number;
  samples: Map<TargetName, Sample[]>;
  errors: Map<TargetName, string[]>;
}

export interface Summary {
  tps: number;
  latencyMs: number;
  cpuMicrosPerTxn?: number;
  runs: number;
  failedRuns: number;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  if (sorted.length === 0) return Number.NaN;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Medians of a target's runs in a cell; undefined when it has no successful run. */
export function summarize(cell: Cell, target: TargetName): Summary | undefined {
  const samples = cell.samples.get(target) ?? [];
  const failedRuns = cell.errors.get(target)?.length ?? 0;
  if (samples.length === 0) return undefined;
  const cpu = samples.flatMap((sample) => (sample.cpuMicrosPerTxn === undefined ? [] : [sample.cpuMicrosPerTxn]));
  return {
    tps: median(samples.map((sample) => sample.tps)),
    latencyMs: median(samples.map((sample) => sample.latencyMs)),
    ...(cpu.length > 0 ? { cpuMicrosPerTxn: median(cpu) } : {}),
    runs: samples.length + failedRuns,
    failedRuns,
  };
}

/** A table as header plus rows of already formatted cells; the first `leftColumns` are text, the rest numbers. */
export interface Table {
  header: string[];
  rows: string[][];
  leftColumns: number;
}

const cpuTargets: TargetName[] = ["gateway", "gateway-full", "gateway-full-exempt", "pgbouncer", "pipe"];

function fixed(value: number | undefined, digits: number): string {
  return value === undefined || Number.isNaN(value) ? "–" : value.toFixed(digits);
}

function failedMark(summary: Summary | undefined): string {
  return summary !== undefined && summary.failedRuns > 0 ? ` (${summary.failedRuns}/${summary.runs} failed)` : "";
}

/** The main table: per target TPS, mean latency and TPS ratio to direct; CPU µs per transaction of each proxy. */
export function resultsTable(cells: Cell[], targets: TargetName[]): Table {
  const proxies = targets.filter((target) => target !== "direct");
  const header = ["workload", "protocol", "clients", "direct tps", "direct ms"];
  for (const target of proxies) header.push(`${target} tps`, `${target} ms`, `${target} ×direct`);
  const cpuColumns = cpuTargets.filter((target) => targets.includes(target));
  for (const target of cpuColumns) header.push(`${target} CPU µs/txn`);
  const rows = cells.map((cell) => {
    const direct = summarize(cell, "direct");
    const row = [cell.workload, cell.protocol, String(cell.clients)];
    row.push(`${fixed(direct?.tps, 0)}${failedMark(direct)}`, fixed(direct?.latencyMs, 3));
    for (const target of proxies) {
      const summary = summarize(cell, target);
      const ratio = summary && direct ? summary.tps / direct.tps : undefined;
      row.push(`${fixed(summary?.tps, 0)}${failedMark(summary)}`, fixed(summary?.latencyMs, 3), fixed(ratio, 2));
    }
    for (const target of cpuColumns) row.push(fixed(summarize(cell, target)?.cpuMicrosPerTxn, 1));
    return row;
  });
  return { header, rows, leftColumns: 2 };
}

/** The full-stack targets and the processes of theirs the breakdown shows, with the column titles. */
const fullTargets: TargetName[] = ["gateway-full", "gateway-full-exempt"];
const componentTitles: Array<[FullComponent, string]> = [
  ["proxy", "proxy"],
  ["policy", "policy"],
  ["nats", "nats-server"],
  ["audit", "audit"],
  ["store", "store PG"],
];

/**
 * The full stack, one row per cell and full-stack target: CPU per statement of each of its processes (median over
 * the rounds of the run's CPU per transaction, divided by the statements in a transaction) and their sum, the
 * statements the audit stored against those pgbench completed (summed over the rounds), and the median time the
 * store took after the run to hold them.
 */
export function fullStackTable(cells: Cell[], targets: TargetName[]): Table {
  const shown = fullTargets.filter((target) => targets.includes(target));
  const header = ["workload", "protocol", "target", "clients", "stmts/txn"];
  for (const [, title] of componentTitles) header.push(`${title} µs/stmt`);
  header.push("total µs/stmt", "audited / expected", "audit lag s");
  const rows = cells.flatMap((cell) =>
    shown.flatMap((target) => {
      const samples = cell.samples.get(target) ?? [];
      const failedRuns = cell.errors.get(target)?.length ?? 0;
      if (samples.length + failedRuns === 0) return [];
      const failed = failedRuns > 0 ? ` (${failedRuns}/${samples.length + failedRuns} failed)` : "";
      const perTxn = statementsPerTransaction(cell.workload);
      const medians = componentTitles.map(([component]) => {
        const values = samples.flatMap((sample) => {
          const value = sample.components?.[component];
          return value === undefined ? [] : [value];
        });
        return values.length === 0 ? undefined : median(values) / perTxn;
      });
      const known = medians.filter((value) => value !== undefined);
      const total = known.length === medians.length && known.length > 0 ? known.reduce((a, b) => a + b) : undefined;
      const audits = samples.flatMap((sample) => (sample.audit === undefined ? [] : [sample.audit]));
      const audited =
        audits.length === 0
          ? "–"
          : `${audits.reduce((sum, a) => sum + a.recorded, 0)} / ${audits.reduce((sum, a) => sum + a.expected, 0)}`;
      const lag = audits.length === 0 ? undefined : median(audits.map((a) => a.lagMs)) / 1000;
      return [
        [
          cell.workload,
          cell.protocol,
          `${target}${failed}`,
          String(cell.clients),
          String(perTxn),
          ...medians.map((value) => fixed(value, 1)),
          fixed(total, 1),
          audited,
          fixed(lag, 1),
        ],
      ];
    }),
  );
  return { header, rows, leftColumns: 3 };
}

/** Mean latency each proxy adds to direct at one client, where latency is not a queueing effect. */
export function addedLatencyTable(cells: Cell[], targets: TargetName[]): Table {
  const proxies = targets.filter((target) => target !== "direct");
  const header = ["workload", "protocol", "direct ms", ...proxies.map((target) => `${target} +ms`)];
  const rows = cells
    .filter((cell) => cell.clients === 1)
    .map((cell) => {
      const direct = summarize(cell, "direct");
      const added = proxies.map((target) => {
        const summary = summarize(cell, target);
        if (!summary || !direct) return "–";
        const delta = summary.latencyMs - direct.latencyMs;
        return `${delta >= 0 ? "+" : ""}${delta.toFixed(3)}`;
      });
      return [cell.workload, cell.protocol, fixed(direct?.latencyMs, 3), ...added];
    });
  return { header, rows, leftColumns: 2 };
}

function widths(table: Table, minimum: number): number[] {
  return table.header.map((title, column) =>
    Math.max(minimum, title.length, ...table.rows.map((row) => row[column]?.length ?? 0)),
  );
}

function pad(table: Table, cells: string[], columnWidths: number[]): string[] {
  return cells.map((cell, column) => {
    const width = columnWidths[column] ?? 0;
    return column < table.leftColumns ? cell.padEnd(width) : cell.padStart(width);
  });
}

/** Fixed-width text for the terminal; numbers right-aligned. */
export function renderText(table: Table): string {
  const columnWidths = widths(table, 0);
  const line = (cells: string[]) => pad(table, cells, columnWidths).join("  ");
  return [line(table.header), line(columnWidths.map((width) => "-".repeat(width))), ...table.rows.map(line)].join("\n");
}

/** A GitHub-flavoured Markdown table, padded the way Biome formats one, so it can be pasted as it is. */
export function renderMarkdown(table: Table): string {
  const columnWidths = widths(table, 3);
  const line = (cells: string[]) => `| ${pad(table, cells, columnWidths).join(" | ")} |`;
  const rule = columnWidths.map((width, column) =>
    column < table.leftColumns ? "-".repeat(width) : `${"-".repeat(width - 1)}:`,
  );
  return [line(table.header), `| ${rule.join(" | ")} |`, ...table.rows.map(line)].join("\n");
}
