import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { SessionSummary, StatementRecord } from "./projections/read-model.ts";
import {
  formatDuration,
  formatOffset,
  oneLine,
  parseTimeOrAgo,
  renderReplay,
  renderSessions,
  truncate,
} from "./render.ts";

const session: SessionSummary = {
  sessionId: "6f0c1d2e-0000-4000-8000-000000000001",
  principal: { subject: "agent-7", groups: ["analysts"], issuer: "https://idp.example.com/", clientId: null },
  target: "app",
  workerId: "proxy-1",
  clientAddress: "127.0.0.1:50000",
  applicationName: "psql",
  tls: true,
  startedAt: new Date("2025-03-01T10:00:00.000Z"),
  endedAt: new Date("2025-03-01T10:05:00.000Z"),
  endReason: "client_closed",
  endDetail: null,
  statementCount: 2,
};

function statement(overrides: Partial<StatementRecord>): StatementRecord {
  return {
    statementId: "s",
    sequence: 1,
    receivedAt: new Date("2025-03-01T10:00:01.250Z"),
    sql: "SELECT 1",
    parameters: [],
    protocol: "simple",
    fingerprint: null,
    classes: ["read"],
    effect: "allow",
    rule: "reads",
    reason: null,
    policyRevision: "r1",
    status: "ok",
    commandTag: "SELECT 1",
    rows: 1,
    durationMicros: 1500,
    sqlstate: null,
    maskedCells: null,
    completedAt: new Date("2025-03-01T10:00:01.252Z"),
    ...overrides,
  };
}

describe("text renderings of the read models", () => {
  it("shows a session as a timeline", () => {
    const text = renderReplay(session, [
      statement({
        sql: "SELECT name,\n       email\nFROM customers",
        rows: 5,
        maskedCells: { "public.customers.email": 5 },
      }),
      statement({
        sequence: 2,
        receivedAt: new Date("2025-03-01T10:01:02.500Z"),
        sql: "DROP TABLE orders",
        effect: "deny",
        rule: "no-ddl",
        status: "refused",
        sqlstate: "42501",
        rows: 0,
        durationMicros: 80,
      }),
      statement({ sequence: 3, receivedAt: new Date("2025-03-01T10:01:03Z"), status: null, durationMicros: null }),
    ]);
    assert.equal(
      text,
      [
        "session 6f0c1d2e-0000-4000-8000-000000000001",
        "principal agent-7 (analysts) issued by https://idp.example.com/",
        "target app · worker proxy-1 · client 127.0.0.1:50000 · application psql · tls",
        "started 2025-03-01T10:00:00Z · ended 2025-03-01T10:05:00Z (client_closed) · 2 statement(s)",
        "",
        "OFFSET      #  STATEMENT                          DECISION       OUTCOME        ROWS  DURATION  MASKED",
        "+1.250s     1  SELECT name, email FROM customers  allow (reads)  ok             5     1.50ms    5",
        "+1m02.500s  2  DROP TABLE orders                  deny (no-ddl)  refused 42501  -     80µs",
        "+1m03.000s  3  SELECT 1                           allow (reads)  pending        -     -",
        "",
      ].join("\n"),
    );
  });

  it("never lets agent text drive the terminal, and truncates long SQL", () => {
    assert.equal(oneLine("SELECT '\u001b[31mred\u001b[0m'\r\n--\u202e"), "SELECT '\\u001b[31mred\\u001b[0m' --\\u202e");
    assert.equal(truncate("SELECT * FROM a_rather_long_table", 12), "SELECT * FR…");
    const text = renderReplay(session, [statement({ sql: `SELECT '${"x".repeat(200)}'` })], { sqlWidth: 30 });
    assert.match(text, /SELECT 'x{21}…/);
    assert.ok(!text.includes("\u001b"));
  });

  it("lists sessions", () => {
    assert.equal(
      renderSessions([session, { ...session, sessionId: "s2", endedAt: null, endReason: null, statementCount: 0 }]),
      [
        "SESSION                               PRINCIPAL  TARGET  STARTED               ENDED                                 STATEMENTS  CLIENT",
        "6f0c1d2e-0000-4000-8000-000000000001  agent-7    app     2025-03-01T10:00:00Z  2025-03-01T10:05:00Z (client_closed)  2           127.0.0.1:50000",
        "s2                                    agent-7    app     2025-03-01T10:00:00Z  open                                  0           127.0.0.1:50000",
        "",
      ].join("\n"),
    );
    assert.equal(renderSessions([]), "no sessions\n");
  });

  it("formats durations and offsets, and reads times and durations ago", () => {
    assert.deepEqual([5, 1500, 12_345, 1_520_000, 123_000_000].map(formatDuration), [
      "5µs",
      "1.50ms",
      "12.3ms",
      "1.52s",
      "2m03s",
    ]);
    assert.deepEqual([12, 59_500, 62_500, 7_384_000].map(formatOffset), [
      "+0.012s",
      "+59.500s",
      "+1m02.500s",
      "+2h03m04s",
    ]);
    const now = new Date("2025-03-01T12:00:00Z");
    assert.deepEqual(parseTimeOrAgo("1h", now), new Date("2025-03-01T11:00:00Z"));
    assert.deepEqual(parseTimeOrAgo("90s", now), new Date("2025-03-01T11:58:30Z"));
    assert.deepEqual(parseTimeOrAgo("2025-02-28T00:00:00Z", now), new Date("2025-02-28T00:00:00Z"));
    assert.equal(parseTimeOrAgo("yesterday", now), undefined);
    assert.equal(parseTimeOrAgo("1y", now), undefined);
  });
});
