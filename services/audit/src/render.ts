import type { ApprovalRecord, SessionSummary, StatementRecord } from "./projections/read-model.ts";

/** One line of printable text: whitespace runs collapsed, control characters escaped. */
export function oneLine(text: string): string {
  let line = "";
  for (const char of text.replace(/\s+/g, " ").trim()) {
    const code = char.codePointAt(0)!;
    line += unsafe(code) ? `\\u${code.toString(16).padStart(4, "0")}` : char;
  }
  return line;
}

// Text from agents (SQL, application names) must not drive the terminal: C0 and C1 controls, bidi marks and
// overrides, line and paragraph separators.
function unsafe(code: number): boolean {
  return (
    code <= 0x1f ||
    (code >= 0x7f && code <= 0x9f) ||
    code === 0x200e ||
    code === 0x200f ||
    code === 0x2028 ||
    code === 0x2029 ||
    (code >= 0x202a && code <= 0x202e) ||
    (code >= 0x2066 && code <= 0x2069)
  );
}

/** At most `width` characters (code points), the cut marked with "…". */
export function truncate(text: string, width: number): string {
  const chars = [...text];
  return chars.length <= width ? text : `${chars.slice(0, Math.max(width - 1, 0)).join("")}…`;
}

/** "2025-03-01T10:00:00Z" (seconds, UTC). */
export function formatTime(date: Date | null): string {
  return date === null ? "-" : `${date.toISOString().slice(0, 19)}Z`;
}

/** 850µs, 12.3ms, 1.52s, 2m03s. */
export function formatDuration(micros: number | null): string {
  if (micros === null) return "-";
  if (micros < 1000) return `${micros}µs`;
  if (micros < 1_000_000) return `${(micros / 1000).toFixed(micros < 10_000 ? 2 : 1)}ms`;
  if (micros < 60_000_000) return `${(micros / 1_000_000).toFixed(2)}s`;
  const seconds = Math.round(micros / 1_000_000);
  return `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, "0")}s`;
}

/** +0.012s, +59.500s, +1m02.500s, +2h03m04s: time since the session started. */
export function formatOffset(ms: number): string {
  const sign = ms < 0 ? "-" : "+";
  const abs = Math.abs(ms);
  if (abs < 60_000) return `${sign}${(abs / 1000).toFixed(3)}s`;
  if (abs < 3_600_000) {
    return `${sign}${Math.floor(abs / 60_000)}m${((abs % 60_000) / 1000).toFixed(3).padStart(6, "0")}s`;
  }
  const s = Math.floor(abs / 1000);
  return `${sign}${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m${String(s % 60).padStart(2, "0")}s`;
}

const DURATION = /^(\d+(?:\.\d+)?)(s|m|h|d|w)$/;
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;

/** An ISO 8601 time, or a duration back from `now` ("90s", "30m", "1h", "2d", "1w"); undefined if neither. */
export function parseTimeOrAgo(text: string, now: Date = new Date()): Date | undefined {
  const duration = DURATION.exec(text);
  if (duration !== null) {
    return new Date(now.getTime() - Number(duration[1]) * UNIT_MS[duration[2] as keyof typeof UNIT_MS]);
  }
  if (!/^\d{4}-\d{2}-\d{2}/.test(text)) return undefined;
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** Left-aligned columns separated by two spaces; the last column is not padded. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((title, i) =>
    Math.max([...title].length, ...rows.map((row) => [...(row[i] ?? "")].length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell + " ".repeat(widths[i]! - [...cell].length)))
      .join("  ")
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join("\n")}\n`;
}

const field = (value: string | null | undefined) => (value === null || value === undefined ? "-" : oneLine(value));

/** `agentgate sessions list`: one line per session, newest first. */
export function renderSessions(sessions: SessionSummary[]): string {
  if (sessions.length === 0) return "no sessions\n";
  return table(
    ["SESSION", "PRINCIPAL", "TARGET", "STARTED", "ENDED", "STATEMENTS", "CLIENT"],
    sessions.map((s) => [
      field(s.sessionId),
      field(s.principal.subject),
      field(s.target),
      formatTime(s.startedAt),
      s.endedAt === null ? "open" : `${formatTime(s.endedAt)} (${field(s.endReason)})`,
      String(s.statementCount),
      field(s.clientAddress),
    ]),
  );
}

export interface ReplayOptions {
  /** Characters of SQL shown per statement; default 60. */
  sqlWidth?: number;
}

/** `agentgate replay`: the session's header, then one line per statement as it happened, then its approvals. */
export function renderReplay(
  session: SessionSummary,
  statements: StatementRecord[],
  options: ReplayOptions = {},
  approvals: ApprovalRecord[] = [],
) {
  const body = renderStatements(session, statements, options);
  if (approvals.length === 0) return body;
  const origin = session.startedAt?.getTime();
  const at = (when: Date | string | null) =>
    when === null || origin === undefined ? "-" : formatOffset(new Date(when).getTime() - origin);
  const lines = ["", "approvals:"];
  for (const a of approvals) {
    const estimate = a.estimatedRows === null ? "not estimated" : `estimate ${a.estimatedRows} row(s)`;
    const objects = a.objects.length > 0 ? `, changes ${a.objects.map(oneLine).join(", ")}` : "";
    lines.push(
      `  ${at(a.requestedAt)}  ${oneLine(a.approvalId)} requested: ${truncate(oneLine(a.sql ?? ""), options.sqlWidth ?? 60)}` +
        ` (rule ${field(a.rule)}; ${estimate}${objects}; ${a.approvalsRequired ?? 1} of ${a.approverGroups.map(oneLine).join(", ")})`,
    );
    for (const d of a.decisions) {
      lines.push(
        `  ${at(d.at)}  ${d.approved ? "approved" : "denied"} by ${oneLine(d.approver)} via ${oneLine(d.via)}` +
          (d.approved ? "" : `: ${oneLine(d.reason ?? "")}`),
      );
    }
    if (a.state !== "pending" && !(a.state === "approved" || a.state === "denied")) {
      lines.push(`  ${at(a.decidedAt)}  ${oneLine(a.state)}${a.endedReason ? `: ${oneLine(a.endedReason)}` : ""}`);
    } else if (a.state === "pending") {
      lines.push("  -  still pending");
    } else {
      lines.push(`  ${at(a.decidedAt)}  outcome: ${a.state}`);
    }
  }
  return `${body}${lines.join("\n")}\n`;
}

function renderStatements(session: SessionSummary, statements: StatementRecord[], options: ReplayOptions) {
  const sqlWidth = options.sqlWidth ?? 60;
  const p = session.principal;
  const groups = p.groups.length > 0 ? ` (${p.groups.map(oneLine).join(", ")})` : "";
  const ended =
    session.endedAt === null
      ? "still open"
      : `ended ${formatTime(session.endedAt)} (${field(session.endReason)}` +
        `${session.endDetail === null ? "" : `: ${oneLine(session.endDetail)}`})`;
  const header = [
    `session ${field(session.sessionId)}`,
    `principal ${field(p.subject)}${groups}${p.issuer === null ? "" : ` issued by ${oneLine(p.issuer)}`}`,
    `target ${field(session.target)} · worker ${field(session.workerId)} · client ${field(session.clientAddress)} · ` +
      `application ${field(session.applicationName)}${session.tls === true ? " · tls" : ""}`,
    `started ${formatTime(session.startedAt)} · ${ended} · ${session.statementCount} statement(s)`,
    "",
  ];
  if (statements.length === 0) return `${[...header, "no statements"].join("\n")}\n`;
  const origin = (session.startedAt ?? statements.find((st) => st.receivedAt !== null)?.receivedAt)?.getTime();
  const masked = statements.some((st) => st.maskedCells !== null);
  const rows = statements.map((st) => {
    const row = [
      st.receivedAt === null || origin === undefined ? "-" : formatOffset(st.receivedAt.getTime() - origin),
      st.sequence === null ? "-" : String(st.sequence),
      st.sql === null ? "(not received)" : truncate(oneLine(st.sql), sqlWidth),
      st.effect === null ? "-" : `${st.effect}${st.rule === null ? "" : ` (${oneLine(st.rule)})`}`,
      st.status === null ? "pending" : `${oneLine(st.status)}${st.sqlstate === null ? "" : ` ${oneLine(st.sqlstate)}`}`,
      st.rows === null || st.status !== "ok" ? "-" : String(st.rows),
      formatDuration(st.durationMicros),
    ];
    if (masked)
      row.push(st.maskedCells === null ? "" : String(Object.values(st.maskedCells).reduce((a, b) => a + b, 0)));
    return row;
  });
  const columns = [
    "OFFSET",
    "#",
    "STATEMENT",
    "DECISION",
    "OUTCOME",
    "ROWS",
    "DURATION",
    ...(masked ? ["MASKED"] : []),
  ];
  return `${header.join("\n")}\n${table(columns, rows)}`;
}
