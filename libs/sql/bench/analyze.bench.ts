// Cost of analyze() for statements an agent typically sends. Not a test: run with
//   node --import tsx libs/sql/bench/analyze.bench.ts
// and read the medians (µs per call, parse + fingerprint + analysis). The proxy caches decisions by cacheKey, but
// every statement is still analysed once on arrival, so this is the per-statement cost the gateway adds.
import { fingerprintSync, parseSync } from "libpg-query";
import { analyze, initSqlAnalysis } from "../src/index.ts";

const CASES: Record<string, string> = {
  "typical 200-char SELECT":
    "SELECT o.id, o.total, c.name, c.email FROM app.orders o JOIN app.customers c ON c.id = o.customer_id " +
    "WHERE o.status = 'paid' AND o.created_at > now() - interval '7 days' ORDER BY o.total DESC LIMIT 50",
  "point SELECT": "SELECT * FROM t WHERE id = 1",
  "INSERT RETURNING": "INSERT INTO app.orders (customer_id, total, status) VALUES (42, 19.99, 'new') RETURNING id",
  "data-modifying CTE": "WITH d AS (DELETE FROM t WHERE v < 0 RETURNING *) INSERT INTO staging SELECT id, v FROM d",
  "3 statements": "BEGIN; UPDATE t SET v = v + 1 WHERE id = 7; COMMIT",
};

const WARMUP = 5_000;
const ROUNDS = 41;
const PER_ROUND = 500;

function medianMicros(run: () => void): number {
  for (let i = 0; i < WARMUP; i++) run();
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < PER_ROUND; i++) run();
    rounds.push(Number(process.hrtime.bigint() - start) / 1_000 / PER_ROUND);
  }
  rounds.sort((a, b) => a - b);
  return rounds[Math.floor(rounds.length / 2)] ?? Number.NaN;
}

await initSqlAnalysis();
// Warm every path first so the first case measured does not pay for JIT compilation of all of them.
for (let i = 0; i < WARMUP; i++) for (const sql of Object.values(CASES)) analyze(sql);
const rows = Object.entries(CASES).map(([name, sql]) => ({
  case: name,
  chars: sql.length,
  "analyze µs": medianMicros(() => analyze(sql)).toFixed(1),
  "parseSync µs": medianMicros(() => parseSync(sql)).toFixed(1),
  "fingerprintSync µs": medianMicros(() => fingerprintSync(sql)).toFixed(1),
}));
console.table(rows);
