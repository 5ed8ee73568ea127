import * as assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { PgbenchError, parsePgbenchOutput, pgbenchArgs } from "./pgbench.ts";

// Captured from `pgbench -S -n --protocol=extended -c 8 -j 2 -T 2` (PostgreSQL 15.20) on the benchmark machine.
const selectOnly = readFileSync(new URL("./fixtures/pgbench-select-only-extended.txt", import.meta.url), "utf8");

describe("parsePgbenchOutput", () => {
  it("reads tps without connection time, mean latency and the transaction counts of a real run", () => {
    assert.deepEqual(parsePgbenchOutput(selectOnly), {
      tps: 13395.404999,
      latencyMs: 0.597,
      transactions: 25560,
      failed: 0,
    });
  });

  it("does not take the initial connection time for the latency", () => {
    assert.notEqual(parsePgbenchOutput(selectOnly).latencyMs, 98.621);
  });

  it("treats a missing failed-transactions line (pgbench before 15) as none failed", () => {
    const older = selectOnly.replace(/^number of failed transactions.*\n/m, "");
    assert.equal(parsePgbenchOutput(older).failed, 0);
  });

  it("reads failed transactions when there are some", () => {
    const failing = selectOnly.replace(
      /^number of failed transactions.*$/m,
      "number of failed transactions: 12 (0.047%)",
    );
    assert.equal(parsePgbenchOutput(failing).failed, 12);
  });

  it("rejects output without a summary, keeping the output for the report", () => {
    const aborted = "pgbench: error: connection to server failed: Connection refused\n";
    assert.throws(
      () => parsePgbenchOutput(aborted),
      (error: unknown) => error instanceof PgbenchError && error.output === aborted,
    );
  });
});

describe("pgbenchArgs", () => {
  const run = {
    pgbench: "pgbench",
    endpoint: { host: "127.0.0.1", port: 40001, user: "loadtest", dbname: "bench" },
    protocol: "prepared" as const,
    clients: 8,
    threads: 2,
    durationSeconds: 10,
  };

  it("runs select-only with -S and never vacuums (-n)", () => {
    assert.deepEqual(pgbenchArgs({ ...run, workload: "select-only" }), [
      "-S",
      "-n",
      "--protocol=prepared",
      "--client=8",
      "--jobs=2",
      "--time=10",
      "--host=127.0.0.1",
      "--port=40001",
      "--username=loadtest",
      "bench",
    ]);
  });

  it("runs the built-in TPC-B-like script without -S", () => {
    assert.equal(pgbenchArgs({ ...run, workload: "tpcb" }).includes("-S"), false);
  });

  it("runs a fixed number of transactions per client instead of a time when asked (warm-up)", () => {
    const args = pgbenchArgs({ ...run, workload: "tpcb", transactions: 50 });
    assert.equal(args.includes("--transactions=50"), true);
    assert.equal(
      args.some((arg) => arg.startsWith("--time=")),
      false,
    );
  });
});
