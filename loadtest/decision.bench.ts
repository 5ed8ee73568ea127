// What deciding a statement costs the gateway when the decision is cached: analysis with PostgreSQL's parser plus
// the cache lookup, through the proxy's own StatementGate and its gRPC policy client, against a real policy service
// (it answers each distinct statement once; every later check is the cached path). Not a test: run with
//   node --import tsx loadtest/decision.bench.ts
import { createPolicyService } from "@agentgate/policy-service";
import { initSqlAnalysis } from "@agentgate/sql";
import { serialize } from "pg-protocol";
import { pino } from "pino";
import { StatementGate } from "../services/proxy/src/enforce/gate.ts";
import { createGrpcPolicy } from "../services/proxy/src/enforce/grpc-policy.ts";

const CASES: Record<string, string> = {
  "pgbench select-only": "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;",
  "typical 200-char SELECT":
    "SELECT o.id, o.total, c.name, c.email FROM app.orders o JOIN app.customers c ON c.id = o.customer_id " +
    "WHERE o.status = 'paid' AND o.created_at > now() - interval '7 days' ORDER BY o.total DESC LIMIT 50",
  "INSERT RETURNING": "INSERT INTO app.orders (customer_id, total, status) VALUES (42, 19.99, 'new') RETURNING id",
  "3 statements": "BEGIN; UPDATE t SET v = v + 1 WHERE id = 7; COMMIT",
};

const logger = pino({ level: "warn" });
const service = createPolicyService({
  rules: [{ name: "all", match: { groups: ["bench"] }, effect: "allow" }],
  listen: "127.0.0.1:0",
  logger,
});
const { port } = await service.listen();
const policy = createGrpcPolicy({ address: `127.0.0.1:${port}`, deadlineMs: 2000, logger });
await initSqlAnalysis();
const gate = new StatementGate({
  policy,
  principal: { subject: "bench", groups: ["bench"], issuer: "https://idp.example", expiresAt: 2 ** 31 },
  target: "app",
  sessionId: "bench",
  readOnly: false,
  logger,
});
const signal = new AbortController().signal;

async function medianMicros(message: Buffer): Promise<number> {
  await gate.check(0x51, message, signal); // the one round trip that fills the cache
  const samples: number[] = [];
  for (let round = 0; round < 41; round++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < 500; i++) {
      const verdict = gate.check(0x51, message, signal);
      if (verdict instanceof Promise) throw new Error("not answered from the cache");
    }
    samples.push(Number(process.hrtime.bigint() - start) / 1000 / 500);
  }
  samples.sort((a, b) => a - b);
  return samples[20]!;
}

// Warm the JIT on every case before measuring any.
for (const sql of Object.values(CASES))
  for (let i = 0; i < 3000; i++) await gate.check(0x51, serialize.query(sql), signal);
const rows = [];
for (const [name, sql] of Object.entries(CASES)) {
  rows.push({
    case: name,
    chars: sql.length,
    "analysis + cached decision, median µs": (await medianMicros(serialize.query(sql))).toFixed(1),
  });
}
console.table(rows);
policy.close();
await service.close();
