import * as assert from "node:assert/strict";
import { describe, it } from "node:test";
import { addedLatencyTable, type Cell, fullStackTable, median, renderMarkdown, resultsTable } from "./report.ts";

function sample(tps: number, latencyMs: number, cpuMicrosPerTxn?: number) {
  return { tps, latencyMs, transactions: tps * 10, failed: 0, ...(cpuMicrosPerTxn ? { cpuMicrosPerTxn } : {}) };
}

const cell: Cell = {
  workload: "select-only",
  protocol: "simple",
  clients: 1,
  samples: new Map([
    ["direct", [sample(1000, 1.0), sample(1200, 0.8), sample(1100, 0.9)]],
    ["gateway", [sample(500, 2.0, 90), sample(550, 1.8, 80), sample(600, 1.7, 70)]],
  ]),
  errors: new Map([["gateway", ["pgbench exited with code 2"]]]),
};

describe("report", () => {
  it("takes the median of each target's runs and the ratio of the medians", () => {
    const table = resultsTable([cell], ["direct", "gateway"]);
    assert.deepEqual(table.header, [
      "workload",
      "protocol",
      "clients",
      "direct tps",
      "direct ms",
      "gateway tps",
      "gateway ms",
      "gateway ×direct",
      "gateway CPU µs/txn",
    ]);
    assert.deepEqual(table.rows, [
      ["select-only", "simple", "1", "1100", "0.900", "550 (1/4 failed)", "1.800", "0.50", "80.0"],
    ]);
  });

  it("shows the mean latency a proxy adds at one client", () => {
    assert.deepEqual(addedLatencyTable([cell], ["direct", "gateway"]).rows, [
      ["select-only", "simple", "0.900", "+0.900"],
    ]);
  });

  it("renders Markdown padded as Biome formats it, numbers right-aligned", () => {
    const markdown = renderMarkdown({ header: ["workload", "tps"], rows: [["tpcb", "1234"]], leftColumns: 1 });
    assert.equal(markdown, "| workload |  tps |\n| -------- | ---: |\n| tpcb     | 1234 |");
  });

  it("averages the two middle values of an even count", () => {
    assert.equal(median([4, 1, 3, 2]), 2.5);
  });
});

describe("fullStackTable", () => {
  const fullSample = (tps: number, proxy: number, recorded: number) => ({
    ...sample(tps, 5, proxy),
    components: { proxy, policy: 7, nats: 14, audit: 21, store: 28 },
    audit: { recorded, expected: tps * 10 * 7, lagMs: 1500 },
  });
  const tpcb: Cell = {
    workload: "tpcb",
    protocol: "extended",
    clients: 8,
    samples: new Map([
      ["direct", [sample(1000, 1.0)]],
      ["gateway-full", [fullSample(100, 700, 7002), fullSample(120, 1400, 8402)]],
      ["gateway-full-exempt", [fullSample(110, 350, 7702)]],
    ]),
    errors: new Map([["gateway-full-exempt", ["the audit recorded 1 of 7 statements (6 missing)"]]]),
  };

  it("shows each process's CPU per statement, their sum and the audit's count, per full-stack target", () => {
    const table = fullStackTable([tpcb], ["direct", "gateway-full", "gateway-full-exempt"]);
    assert.deepEqual(table.header, [
      "workload",
      "protocol",
      "target",
      "clients",
      "stmts/txn",
      "proxy µs/stmt",
      "policy µs/stmt",
      "nats-server µs/stmt",
      "audit µs/stmt",
      "store PG µs/stmt",
      "total µs/stmt",
      "audited / expected",
      "audit lag s",
    ]);
    assert.deepEqual(table.rows, [
      // proxy: median of 700 and 1400 µs/txn = 1050, over 7 statements; the others 7..28 µs/txn → 1..4.
      [
        "tpcb",
        "extended",
        "gateway-full",
        "8",
        "7",
        "150.0",
        "1.0",
        "2.0",
        "3.0",
        "4.0",
        "160.0",
        "15404 / 15400",
        "1.5",
      ],
      [
        "tpcb",
        "extended",
        "gateway-full-exempt (1/2 failed)",
        "8",
        "7",
        "50.0",
        "1.0",
        "2.0",
        "3.0",
        "4.0",
        "60.0",
        "7702 / 7700",
        "1.5",
      ],
    ]);
  });

  it("has no rows when no full-stack target ran", () => {
    assert.deepEqual(fullStackTable([cell], ["direct", "gateway"]).rows, []);
  });
});
