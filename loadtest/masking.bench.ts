// What masking costs: the same 100,000-row SELECT through one gateway, as a principal who sees every column in
// clear and as one for whom 3 of its columns are masked (redact, partial, hash), alternating, median of --rounds.
// Three clients: a raw protocol client that reads the result without decoding it (so the gateway's work dominates
// the time), node-postgres (an agent's driver) and psql (connect, query, print the table to /dev/null). Also the gateway's CPU time per query. Not a
// test: run with
//   node --import tsx loadtest/masking.bench.ts [--rounds 7] [--rows 100000]

import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createPolicyService } from "@agentgate/policy-service";
import { findBinary, startOidcProvider, startPostgres } from "@agentgate/testkit";
import pg from "pg";
import { serialize } from "pg-protocol";
import { clockTicksPerSecond, processTreeCpuTicks } from "./cpu.ts";
import { gatewayTarget, startGateway } from "./gateway.ts";

const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "7" },
    rows: { type: "string", default: "100000" },
    /** Strategies for ssn, email and card, in that order. */
    strategies: { type: "string", default: "redact,partial,hash" },
  },
});
const [ssnStrategy, emailStrategy, cardStrategy] = values.strategies.split(",");
const rounds = Number(values.rounds);
const rows = Number(values.rows);
const SQL = "SELECT * FROM people";

const server = await startPostgres({ settings: { shared_buffers: "128MB" } });
const database = await server.createDatabase();
await server.query(
  `CREATE TABLE people (id int PRIMARY KEY, name text, ssn text, email text, card text, city text, amount int);
   INSERT INTO people SELECT i, 'person ' || i, lpad((i * 7919 % 1000000000)::text, 9, '0'),
     'user' || i || '@example.com', (4000000000000000 + i)::text, 'city ' || (i % 100), i % 10000
   FROM generate_series(1, ${rows}) i;
   ANALYZE people;`,
  [],
  database,
);
const dir = mkdtempSync(join(tmpdir(), "agentgate-masking-bench-"));
const rulesFile = join(dir, "policy.yaml");
writeFileSync(
  rulesFile,
  `rules:
  - name: read
    match: { classes: [read, session, transaction] }
    effect: allow
masks:
  - { column: public.people.ssn, strategy: "${ssnStrategy}", groups: { unmasked: [clear] } }
  - { column: public.people.email, strategy: "${emailStrategy}", groups: { unmasked: [clear] } }
  - { column: public.people.card, strategy: "${cardStrategy}", groups: { unmasked: [clear] } }
`,
);
const policy = createPolicyService({ rulesFile, listen: "127.0.0.1:0" });
const policyPort = (await policy.listen()).port;
const idp = await startOidcProvider({
  audience: "agentgate",
  clients: [
    { clientId: "masked", clientSecret: "s1", groups: ["agents"] },
    { clientId: "clear", clientSecret: "s2", groups: ["clear"] },
  ],
});
const gateway = await startGateway(
  server.url(database),
  [
    "  allowPlaintextLoopback: true",
    `  policy: { address: "127.0.0.1:${policyPort}" }`,
    `  masking: { hashKey: "${"b".repeat(32)}" }`,
  ],
  ["identity:", `  issuer: ${JSON.stringify(idp.issuer)}`, "  audience: agentgate"],
);

/** Reads the whole result with a bare protocol client; returns milliseconds and bytes. */
async function raw(user: string, token: string): Promise<{ ms: number; bytes: number }> {
  const socket = connect({ host: "127.0.0.1", port: gateway.port });
  await new Promise((r) => socket.once("connect", r));
  let buffered: Buffer = Buffer.alloc(0);
  let bytes = 0;
  let readyForQuery = 0;
  let started = 0n;
  let resolveReady: (() => void) | undefined;
  socket.on("data", (chunk: Buffer) => {
    bytes += chunk.length;
    // Only message boundaries matter: count ReadyForQuery messages, skip everything else by its length.
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    let offset = 0;
    while (buffered.length - offset >= 5) {
      const length = buffered.readUInt32BE(offset + 1);
      if (buffered.length - offset < 1 + length) break;
      if (buffered[offset] === 0x52 && buffered.readUInt32BE(offset + 5) === 3) {
        socket.write(serialize.password(token));
      }
      if (buffered[offset] === 0x5a) {
        readyForQuery++;
        resolveReady?.();
      }
      offset += 1 + length;
    }
    buffered = buffered.subarray(offset);
  });
  const ready = (n: number) =>
    new Promise<void>((r) => {
      resolveReady = () => {
        if (readyForQuery >= n) r();
      };
      resolveReady();
    });
  socket.write(serialize.startup({ user, database: gatewayTarget }));
  await ready(1);
  bytes = 0;
  started = process.hrtime.bigint();
  socket.write(serialize.query(SQL));
  await ready(2);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  socket.end(serialize.end());
  return { ms, bytes };
}

async function driver(user: string, token: string): Promise<{ ms: number; bytes: number }> {
  const client = new pg.Client({
    host: "127.0.0.1",
    port: gateway.port,
    user,
    database: gatewayTarget,
    password: token,
  });
  await client.connect();
  const started = process.hrtime.bigint();
  const result = await client.query(SQL);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  await client.end();
  if (result.rows.length !== rows) throw new Error(`expected ${rows} rows, got ${result.rows.length}`);
  return { ms, bytes: 0 };
}

const psqlBinary = findBinary("psql", "install postgresql-client");

/** psql as an agent would run it: the whole process (connect, query, print the aligned table to /dev/null). */
async function psql(user: string, token: string): Promise<{ ms: number; bytes: number }> {
  const started = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => {
    execFile(
      psqlBinary,
      [
        "-X",
        "-q",
        "-h",
        "127.0.0.1",
        "-p",
        String(gateway.port),
        "-U",
        user,
        "-d",
        gatewayTarget,
        "-c",
        SQL,
        "-o",
        "/dev/null",
      ],
      { env: { ...process.env, PGPASSWORD: token, PGSSLMODE: "disable" }, maxBuffer: 1 << 20 },
      (error) => (error ? reject(error) : resolve()),
    );
  });
  return { ms: Number(process.hrtime.bigint() - started) / 1e6, bytes: 0 };
}

const median = (list: number[]) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)]!;
const ticks = clockTicksPerSecond();
try {
  const tokens = { masked: await idp.token("masked"), clear: await idp.token("clear") };
  // Warm up both paths (catalog load, JIT) once.
  for (const who of ["clear", "masked"] as const) await raw(who, tokens[who]);
  const table: Record<string, string>[] = [];
  for (const [client, run] of [
    ["raw protocol client", raw],
    ["node-postgres", driver],
    ["psql (whole process)", psql],
  ] as const) {
    const times: Record<string, number[]> = { clear: [], masked: [] };
    const cpu: Record<string, number> = { clear: 0, masked: 0 };
    for (let r = 0; r < rounds; r++) {
      for (const who of r % 2 === 0 ? (["clear", "masked"] as const) : (["masked", "clear"] as const)) {
        const before = processTreeCpuTicks(gateway.pid);
        times[who]!.push((await run(who, tokens[who])).ms);
        cpu[who]! += processTreeCpuTicks(gateway.pid) - before;
      }
    }
    const clear = median(times.clear!);
    const masked = median(times.masked!);
    table.push({
      client,
      "unmasked ms (median)": clear.toFixed(1),
      "3 columns masked ms (median)": masked.toFixed(1),
      ratio: (masked / clear).toFixed(2),
      "gateway CPU ms/query unmasked": ((cpu.clear! / ticks / rounds) * 1000).toFixed(0),
      "gateway CPU ms/query masked": ((cpu.masked! / ticks / rounds) * 1000).toFixed(0),
    });
  }
  console.log(`\n${SQL}: ${rows} rows × 7 columns, masks ${values.strategies}, ${rounds} rounds, alternating`);
  console.table(table);
} finally {
  await gateway.stop();
  await policy.close();
  await idp.stop();
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
}
