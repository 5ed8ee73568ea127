import * as assert from "node:assert/strict";
import { describe, it } from "node:test";
import { addedLatencyTable, type Cell, median, renderMarkdown, resultsTable } from "./report.ts";

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
