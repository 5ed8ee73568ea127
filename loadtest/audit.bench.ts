// What the write-ahead audit step adds per statement: 8 concurrent sessions run the same short statement through a
// gateway without an audit bus and through one that records every statement in NATS JetStream (loopback) before it
// runs, alternating, and the per-statement latencies are compared. Two loads: paced (each session sends a statement
// every --pace-ms, so the machine is not saturated and the difference is the step itself) and flat out (each session
// sends the next statement as soon as the last returns: on 2 cores shared by PostgreSQL, NATS, the gateway and the
// client, latency there mostly measures throughput). Not a test: run with
//   node --import tsx loadtest/audit.bench.ts [--seconds 5] [--rounds 3] [--pace-ms 5]
import { parseArgs } from "node:util";
import { startNats, startPostgres } from "@agentgate/testkit";
import pg from "pg";
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

/** Runs SESSIONS clients for `seconds` (pacing each at `pace` ms if > 0); returns every statement's latency in µs. */
async function run(port: number, pace: number): Promise<number[]> {
  const clients = await Promise.all(
    Array.from({ length: SESSIONS }, async () => {
      const c = new pg.Client({ host: "127.0.0.1", port, user: "bench", database: gatewayTarget });
      await c.connect();
      return c;
    }),
  );
  const latencies: number[] = [];
  const until = Date.now() + seconds * 1000;
  await Promise.all(
    clients.map(async (c) => {
      while (Date.now() < until) {
        const start = process.hrtime.bigint();
        await c.query(SQL, [1 + Math.floor(Math.random() * 10000)]);
        const micros = Number(process.hrtime.bigint() - start) / 1000;
        latencies.push(micros);
        if (pace > 0) await new Promise((r) => setTimeout(r, Math.max(0, pace - micros / 1000)));
      }
    }),
  );
  await Promise.all(clients.map((c) => c.end()));
  return latencies;
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
try {
  for (const [load, pace] of [
    [`paced (a statement every ${paceMs} ms per session)`, paceMs],
    ["flat out", 0],
  ] as const) {
    const results: Record<string, number[]> = { "no audit": [], "write-ahead audit": [] };
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
      for (const [name, gateway] of order) results[name]!.push(...(await run(gateway.port, pace)));
    }
    const sorted = Object.fromEntries(Object.entries(results).map(([k, l]) => [k, [...l].sort((a, b) => a - b)]));
    console.log(`\n${load}, ${SESSIONS} sessions, NATS on loopback`);
    console.table(
      Object.entries(sorted).map(([name, l]) => ({
        gateway: name,
        statements: l.length,
        "median µs": quantile(l, 0.5).toFixed(0),
        "p99 µs": quantile(l, 0.99).toFixed(0),
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
