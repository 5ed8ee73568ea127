// What the write-ahead audit step adds per statement: 8 concurrent sessions run the same short statement through a
// gateway without an audit bus and through one that records every statement in NATS JetStream (loopback) before it
// runs, alternating, and the per-statement latencies are compared, with the gateway's CPU time per statement.
// Three loads:
// - random arrivals: each session waits an exponentially distributed time (mean --pace-ms) after each statement, as
//   independent clients do; the machine is not saturated, so the difference is the step itself;
// - fixed pacing: each session sends a statement every --pace-ms; the sessions start together and stay in step, so
//   their statements arrive in bursts of 8 and queue behind each other in every process;
// - flat out: each session sends the next statement as soon as the last returns; on 2 cores shared by PostgreSQL,
//   NATS, the gateway and the client, latency there mostly measures throughput.
// Not a test: run with
//   node --import tsx loadtest/audit.bench.ts [--seconds 5] [--rounds 3] [--pace-ms 5]
import { parseArgs } from "node:util";
import { startNats, startPostgres } from "@agentgate/testkit";
import pg from "pg";
import { clockTicksPerSecond, processTreeCpuTicks } from "./cpu.ts";
import { gatewayTarget, startGateway } from "./gateway.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "5" },
    rounds: { type: "string", default: "3" },
    "pace-ms": { type: "string", default: "5" },
  },
});
const seconds = Number(values.seconds);
const rounds = Number(values.rounds);
const paceMs = Number(values["pace-ms"]);
const SESSIONS = 8;
const SQL = "SELECT abalance FROM accounts WHERE aid = $1";

const server = await startPostgres({ settings: { shared_buffers: "128MB" } });
const nats = await startNats();
const database = await server.createDatabase();
await server.query(
  "CREATE TABLE accounts (aid int PRIMARY KEY, abalance int); INSERT INTO accounts SELECT i, 0 FROM generate_series(1, 10000) i",
  [],
  database,
);
const plain = await startGateway(server.url(database));
const audited = await startGateway(server.url(database), ["  audit:", `    nats: ${JSON.stringify(nats.url)}`]);

type Pacing = "random" | "fixed" | "none";
const TICKS = clockTicksPerSecond();

/** The wait after a statement that took `micros`: none, the rest of the period, or an exponential gap. */
function gap(pacing: Pacing, micros: number): number {
  if (pacing === "fixed") return Math.max(0, paceMs - micros / 1000);
  if (pacing === "random") return -Math.log(1 - Math.random()) * paceMs;
  return 0;
}

/**
 * Runs SESSIONS clients for `seconds`; returns every statement's latency in µs and the gateway's CPU ticks used
 * while they ran.
 */
async function run(
  gateway: { port: number; pid: number },
  pacing: Pacing,
): Promise<{ latencies: number[]; ticks: number }> {
  const port = gateway.port;
  const clients = await Promise.all(
    Array.from({ length: SESSIONS }, async () => {
      const c = new pg.Client({ host: "127.0.0.1", port, user: "bench", database: gatewayTarget });
      await c.connect();
      return c;
    }),
  );
  const latencies: number[] = [];
  const cpuBefore = processTreeCpuTicks(gateway.pid);
  const until = Date.now() + seconds * 1000;
  await Promise.all(
    clients.map(async (c) => {
      while (Date.now() < until) {
        const start = process.hrtime.bigint();
        await c.query(SQL, [1 + Math.floor(Math.random() * 10000)]);
        const micros = Number(process.hrtime.bigint() - start) / 1000;
        latencies.push(micros);
        if (pacing !== "none") await new Promise((r) => setTimeout(r, gap(pacing, micros)));
      }
    }),
  );
  const ticks = processTreeCpuTicks(gateway.pid) - cpuBefore;
  await Promise.all(clients.map((c) => c.end()));
  return { latencies, ticks };
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
try {
  for (const [load, pacing] of [
    [`random arrivals (exponential gaps, mean ${paceMs} ms per session)`, "random"],
    [`fixed pacing (a statement every ${paceMs} ms per session, in step)`, "fixed"],
    ["flat out", "none"],
  ] as const) {
    const results: Record<string, { latencies: number[]; ticks: number }> = {
      "no audit": { latencies: [], ticks: 0 },
      "write-ahead audit": { latencies: [], ticks: 0 },
    };
    for (let r = 0; r < rounds; r++) {
      const order =
        r % 2 === 0
          ? ([
              ["no audit", plain],
              ["write-ahead audit", audited],
            ] as const)
          : ([
              ["write-ahead audit", audited],
              ["no audit", plain],
            ] as const);
      for (const [name, gateway] of order) {
        const { latencies, ticks } = await run(gateway, pacing);
        results[name]!.latencies.push(...latencies);
        results[name]!.ticks += ticks;
      }
    }
    const sorted = Object.fromEntries(
      Object.entries(results).map(([k, r]) => [k, [...r.latencies].sort((a, b) => a - b)]),
    );
    console.log(`\n${load}, ${SESSIONS} sessions, NATS on loopback`);
    console.table(
      Object.entries(sorted).map(([name, l]) => ({
        gateway: name,
        statements: l.length,
        "median µs": quantile(l, 0.5).toFixed(0),
        "p99 µs": quantile(l, 0.99).toFixed(0),
        "gateway CPU µs/statement": ((results[name]!.ticks / TICKS / l.length) * 1e6).toFixed(0),
      })),
    );
    const a = sorted["no audit"]!;
    const b = sorted["write-ahead audit"]!;
    console.log(
      `write-ahead step adds ${(quantile(b, 0.5) - quantile(a, 0.5)).toFixed(0)} µs at the median, ` +
        `${(quantile(b, 0.99) - quantile(a, 0.99)).toFixed(0)} µs at p99`,
    );
  }
} finally {
  await plain.stop();
  await audited.stop();
  await nats.stop();
  await server.stop();
}
