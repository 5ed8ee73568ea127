// What the read-only backstop costs: pgbench through a gateway with a policy (the backstop on) and through the same
// gateway built from another checkout without it (--baseline), in one run, rounds alternating, against one
// PostgreSQL and one policy service. TPC-B exercises every switch the backstop makes (its transaction block opens
// READ WRITE, and its SELECT between UPDATEs runs in a read-only savepoint); select-only makes none after the first.
// Not a test: run with
//   node --import tsx loadtest/backstop.bench.ts --baseline ../base/services/cli/bin/agentgate.js
//     [--seconds 10] [--rounds 3] [--clients 8] [--scale 10] [--workloads select-only,tpcb]
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { createPolicyService } from "@agentgate/policy-service";
import { findBinary, startPostgres } from "@agentgate/testkit";
import { clockTicksPerSecond, processTreeCpuTicks } from "./cpu.ts";
import { gatewayTarget, startGateway } from "./gateway.ts";
import { initPgbench, type Protocol, runPgbench, type Workload } from "./pgbench.ts";

const { values } = parseArgs({
  options: {
    baseline: { type: "string" },
    seconds: { type: "string", default: "10" },
    rounds: { type: "string", default: "3" },
    clients: { type: "string", default: "8" },
    scale: { type: "string", default: "10" },
    workloads: { type: "string", default: "select-only,tpcb" },
  },
});
if (values.baseline === undefined) {
  process.stderr.write("usage: backstop.bench.ts --baseline <other checkout>/services/cli/bin/agentgate.js\n");
  process.exit(2);
}
const baselineEntry = resolve(values.baseline);
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
const clients = Number(values.clients);
const TICKS = clockTicksPerSecond();
const log = (line: string) => process.stderr.write(`${line}\n`);

const pgbench = findBinary("pgbench", "apt-get install -y postgresql");
const server = await startPostgres({
  settings: { shared_buffers: "256MB", fsync: "off", synchronous_commit: "off", full_page_writes: "off" },
});
const dir = mkdtempSync(join(tmpdir(), "agentgate-backstop-bench-"));
const gateways: { name: string; port: number; pid: number; stop(): Promise<void> }[] = [];
let policy: ReturnType<typeof createPolicyService> | undefined;
try {
  const dbname = await server.createDatabase();
  await initPgbench(
    pgbench,
    { host: server.host, port: server.port, user: server.user, password: server.password, dbname },
    Number(values.scale),
  );
  writeFileSync(
    join(dir, "policy.yaml"),
    "rules:\n  - name: bench\n    match: { classes: [read, write, session, transaction] }\n    effect: allow\n",
  );
  policy = createPolicyService({ rulesFile: join(dir, "policy.yaml"), listen: "127.0.0.1:0" });
  const policyLines = ["  policy:", `    address: "127.0.0.1:${(await policy.listen()).port}"`];
  for (const [name, entry] of [
    ["backstop", undefined],
    ["baseline", baselineEntry],
  ] as const) {
    const g = await startGateway(server.url(dbname), policyLines, [], entry);
    gateways.push({ name, ...g });
    log(`${name} gateway on port ${g.port} (pid ${g.pid})`);
  }

  const cells: { workload: Workload; protocol: Protocol }[] = [];
  for (const workload of (values.workloads ?? "").split(",") as Workload[]) {
    for (const protocol of ["simple", "extended"] as const) cells.push({ workload, protocol });
  }
  const samples = new Map<string, { tps: number; cpu: number }[]>();
  for (let round = 0; round < rounds; round++) {
    for (const cell of cells) {
      const order = (round + cells.indexOf(cell)) % 2 === 0 ? gateways : [...gateways].reverse();
      for (const g of order) {
        if (cell.workload === "tpcb") {
          for (const sql of [
            "VACUUM pgbench_branches",
            "VACUUM pgbench_tellers",
            "TRUNCATE pgbench_history",
            "CHECKPOINT",
          ]) {
            await server.query(sql, [], dbname);
          }
        }
        const before = processTreeCpuTicks(g.pid);
        const result = await runPgbench({
          pgbench,
          endpoint: { host: "127.0.0.1", port: g.port, user: "bench", dbname: gatewayTarget },
          workload: cell.workload,
          protocol: cell.protocol,
          clients,
          threads: Math.min(clients, availableParallelism()),
          durationSeconds: seconds,
        });
        const cpu = ((processTreeCpuTicks(g.pid) - before) * 1e6) / TICKS / Math.max(1, result.transactions);
        const key = `${cell.workload} ${cell.protocol} ${g.name}`;
        samples.set(key, [...(samples.get(key) ?? []), { tps: result.tps, cpu }]);
        log(
          `round ${round + 1} ${key}: ${result.tps.toFixed(0)} tps, ${cpu.toFixed(1)} CPU µs/txn, ${result.failed} failed`,
        );
      }
    }
  }

  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  const lines = [
    `pgbench, ${clients} clients, ${seconds} s × ${rounds} rounds, scale ${values.scale}; median tps; gateway CPU per transaction`,
    "",
    "| workload | protocol | baseline tps | backstop tps | ratio of medians | median of round ratios | baseline CPU µs/txn | backstop CPU µs/txn |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const cell of cells) {
    const of = (name: string) => samples.get(`${cell.workload} ${cell.protocol} ${name}`) ?? [];
    const base = of("baseline");
    const back = of("backstop");
    const [bt, kt] = [median(base.map((s) => s.tps)), median(back.map((s) => s.tps))];
    // The two gateways of a round ran back to back: their ratio is freer of the machine's drift between rounds.
    const paired = median(back.map((s, i) => s.tps / base[i]!.tps));
    lines.push(
      `| ${cell.workload} | ${cell.protocol} | ${bt.toFixed(0)} | ${kt.toFixed(0)} | ${(kt / bt).toFixed(3)} | ${paired.toFixed(3)} | ${median(base.map((s) => s.cpu)).toFixed(1)} | ${median(back.map((s) => s.cpu)).toFixed(1)} |`,
    );
  }
  process.stdout.write(`${lines.join("\n")}\n`);
} finally {
  for (const g of gateways) await g.stop();
  await policy?.close();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
