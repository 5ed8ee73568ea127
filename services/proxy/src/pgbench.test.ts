import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { findBinary } from "@agentgate/testkit";
import { startTestGateway, type TestGateway } from "./testing.ts";

const run = promisify(execFile);
const pgbench = findBinary("pgbench", "apt-get install -y postgresql");
let gw: TestGateway;

before(async () => {
  gw = await startTestGateway();
  await run(pgbench, ["-i", "-s", "1", "-q", gw.directUrl], { env: { ...process.env, PGOPTIONS: "" } });
});

after(async () => {
  await gw.close();
});

describe("pgbench through the gateway", { timeout: 120_000 }, () => {
  for (const mode of ["simple", "extended", "prepared"]) {
    for (const workload of [["-S"], ["-N"]]) {
      it(`runs ${workload[0] === "-S" ? "select-only" : "simple-update"} in ${mode} mode without error`, async () => {
        const { stdout } = await run(pgbench, [...workload, "-M", mode, "-c", "4", "-j", "2", "-t", "200", gw.url()]);
        assert.match(stdout, /number of transactions actually processed: 800\/800/);
        assert.match(stdout, /number of failed transactions: 0 /);
      });
    }
  }

  it("runs a pipelined script (\\startpipeline) in extended mode", async () => {
    const script = [
      "\\startpipeline",
      ...Array(10).fill("SELECT abalance FROM pgbench_accounts WHERE aid = 1;"),
      "\\endpipeline",
    ];
    const dir = mkdtempSync(join(tmpdir(), "agentgate-pgbench-"));
    try {
      const file = join(dir, "pipeline.sql");
      writeFileSync(file, `${script.join("\n")}\n`);
      const { stdout } = await run(pgbench, ["-n", "-f", file, "-M", "extended", "-c", "2", "-t", "100", gw.url()]);
      assert.match(stdout, /number of transactions actually processed: 200\/200/);
      assert.match(stdout, /number of failed transactions: 0 /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
