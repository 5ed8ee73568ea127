// Issue 12's acceptance: writes an administrator hid behind reads (views, operators, casts, aggregates, domains, RLS,
// shadowed names, cursors, side channels and nestings of them; the corpus is testing/hiding-places.ts). Each case is
// set up afresh on the database, then:
//   (a) run directly against PostgreSQL as the gateway's own upstream role, it changes the database: the case is live;
//   (b) run through the gateway by an agent whose reads are allowed and whose writes need approval (no approval
//       service here, so they are refused), and by a read-only principal, in the simple and the extended protocol
//       (and with psql for some), it is refused and the database is unchanged.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parseConfig } from "@agentgate/config";
import { createPolicyService } from "@agentgate/policy-service";
import {
  type FreshDatabase,
  findBinary,
  freshDatabase,
  type OidcProviderInstance,
  startOidcProvider,
} from "@agentgate/testkit";
import pg from "pg";
import { pino } from "pino";
import { createProxy, type ProxyWorker } from "./proxy.ts";
import { runPsql } from "./psql-testing.ts";
import {
  AGENT_ROLE,
  type AgentStep,
  BASE_SETUP,
  GRANTS_SQL,
  HIDING_PLACES,
  type HidingPlace,
  RESET_SQL,
  type SetupContext,
  STATE_QUERY,
} from "./testing/hiding-places.ts";

const RULES = `
rules:
  - name: agents-read
    match: { groups: [agents], classes: [read, copy-out, session, transaction] }
    effect: allow
  - name: agents-change-with-approval
    match: { groups: [agents], classes: [write, ddl, copy-in, procedural, privilege, admin] }
    effect: require_approval
    approvers: [dbas]
  - name: readers-read
    match: { groups: [readers], classes: [read, copy-out, session, transaction] }
    effect: allow
`;

/**
 * What a refusal of a hidden write may look like: PostgreSQL's own "read-only transaction" (the backstop), a refused
 * switch to read-write mode (25001), or the policy's refusal or hold (42501).
 */
const REFUSALS = new Set(["25006", "25001", "42501"]);
const STEP_TIMEOUT_MS = 15_000;

type Protocol = "simple" | "extended";
type Principal = "agent" | "reader";

interface StepOutcome {
  step: string;
  code?: string;
  message?: string;
}

let db: FreshDatabase;
let idp: OidcProviderInstance;
let policy: ReturnType<typeof createPolicyService>;
let policyPort: number;
let dir: string;
let ctx: SetupContext;
let superuserUrl: URL;
const agentPassword = randomBytes(18).toString("hex");

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "agentgate-hiding-places-"));
  writeFileSync(join(dir, "policy.yaml"), RULES);
  policy = createPolicyService({ rulesFile: join(dir, "policy.yaml"), listen: "127.0.0.1:0" });
  policyPort = (await policy.listen()).port;
  idp = await startOidcProvider({
    audience: "agentgate",
    clients: [
      { clientId: "agent", clientSecret: "agent-secret", groups: ["agents"] },
      { clientId: "reader", clientSecret: "reader-secret", groups: ["readers"] },
    ],
  });
  db = await freshDatabase();
  superuserUrl = new URL(db.url);
  await admin(async (client) => {
    await client.query(`DROP ROLE IF EXISTS ${AGENT_ROLE}`);
    await client.query(`CREATE ROLE ${AGENT_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD '${agentPassword}'`);
  });
  const port = Number(superuserUrl.port);
  ctx = {
    target: `host=127.0.0.1 port=${port} dbname=${db.name}`,
    host: "127.0.0.1",
    port,
    database: db.name,
    agentPassword,
    psql: findBinary("psql", "apt-get install -y postgresql-client"),
  };
});

after(async () => {
  await db?.drop();
  await admin((client) => client.query(`DROP ROLE IF EXISTS ${AGENT_ROLE}`), "postgres").catch(() => undefined);
  await policy?.close();
  await idp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A superuser session on the case's database (or another), search_path = public whatever the database says. */
async function admin<T>(work: (client: pg.Client) => Promise<T>, database = db.name): Promise<T> {
  const url = new URL(superuserUrl);
  url.pathname = `/${database}`;
  const client = new pg.Client({ connectionString: url.toString(), options: "-c search_path=public" });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Resets the database to BASE_SETUP plus the case's objects and grants; returns the state to compare with. */
async function prepare(place: HidingPlace): Promise<string> {
  await admin(async (client) => {
    await client.query(RESET_SQL);
    await client.query(BASE_SETUP);
    const setup = typeof place.setup === "function" ? place.setup(ctx) : place.setup;
    if (setup.trim() !== "") await client.query(setup);
    await client.query(GRANTS_SQL);
    if (place.afterGrants !== undefined) await client.query(place.afterGrants);
  });
  return state();
}

async function state(): Promise<string> {
  const url = new URL(superuserUrl);
  const client = new pg.Client({ connectionString: url.toString(), options: "-c search_path=pg_catalog" });
  await client.connect();
  try {
    return JSON.stringify((await client.query(STATE_QUERY)).rows[0]);
  } finally {
    await client.end();
  }
}

function stepText(step: AgentStep): string {
  return typeof step === "string" ? step : step.sql;
}

/** Runs the steps in order on one connection, each as the protocol says; never throws for a statement's error. */
async function runSteps(client: pg.Client, steps: readonly AgentStep[], protocol: Protocol): Promise<StepOutcome[]> {
  const outcomes: StepOutcome[] = [];
  for (const step of steps) {
    const sql = stepText(step);
    const values = typeof step === "string" ? undefined : [...step.values];
    const query: pg.QueryConfig & { queryMode?: "extended" } =
      protocol === "extended" ? { text: sql, values: values ?? [], queryMode: "extended" } : { text: sql, values };
    try {
      await client.query(query);
      outcomes.push({ step: sql });
    } catch (error) {
      const e = error as { code?: string; message?: string };
      outcomes.push({ step: sql, code: e.code ?? "no SQLSTATE", message: e.message });
    }
  }
  return outcomes;
}

function describeOutcomes(outcomes: readonly StepOutcome[]): string {
  return outcomes
    .map((o) => (o.code === undefined ? `ok: ${o.step}` : `${o.code} ${o.message}: ${o.step}`))
    .join(" | ");
}

/** The case's state changes when run directly as the upstream role; undefined when it does, else why not. */
async function liveDirectly(place: HidingPlace, protocol: Protocol): Promise<string | undefined> {
  const before = await prepare(place);
  const client = new pg.Client({
    host: ctx.host,
    port: ctx.port,
    database: ctx.database,
    user: AGENT_ROLE,
    password: agentPassword,
    query_timeout: STEP_TIMEOUT_MS,
  });
  await client.connect();
  let outcomes: StepOutcome[];
  try {
    outcomes = await runSteps(client, place.steps, protocol);
  } finally {
    await client.end();
  }
  const afterwards = await state();
  const errors = outcomes.filter((o) => o.code !== undefined);
  if (errors.length > 0) return `direct ${protocol}: a statement failed: ${describeOutcomes(outcomes)}`;
  if (afterwards === before) return `direct ${protocol}: nothing changed (${before})`;
  return undefined;
}

/** The same through psql, directly: undefined when it changes the state. */
async function liveThroughPsqlDirectly(place: HidingPlace): Promise<string | undefined> {
  const before = await prepare(place);
  const url = `postgresql://${AGENT_ROLE}@${ctx.host}:${ctx.port}/${ctx.database}`;
  const result = await psqlSteps(url, place, agentPassword);
  const afterwards = await state();
  if (result.errors.length > 0) return `direct psql: ${result.stderr}`;
  if (afterwards === before) return `direct psql: nothing changed (${before})`;
  return undefined;
}

async function psqlSteps(
  url: string,
  place: HidingPlace,
  password: string,
): Promise<{ errors: string[]; stderr: string }> {
  const input = `${place.steps.map((s) => `${stepText(s).replace(/;\s*$/, "")};`).join("\n")}\n`;
  const result = await runPsql(url, ["-q", "-v", "ON_ERROR_STOP=0", "-v", "VERBOSITY=verbose"], {
    input,
    env: { PGPASSWORD: password },
  });
  const stderr = result.stderr.toString("utf8");
  const errors = [...stderr.matchAll(/ERROR: {2}([0-9A-Z]{5}):/g)].map((m) => m[1]!);
  return { errors, stderr: stderr.trim().replaceAll("\n", " / ") };
}

/** A gateway of its own for one run (a fresh catalog cache: every case recreates its objects). */
async function startGateway(): Promise<{ proxy: ProxyWorker; port: number }> {
  const target = new URL(`postgresql://127.0.0.1:${ctx.port}/${ctx.database}`);
  target.username = AGENT_ROLE;
  target.password = agentPassword;
  const config = parseConfig({
    proxy: {
      listen: "127.0.0.1:0",
      drainTimeoutMs: 1000,
      allowPlaintextLoopback: true,
      policy: { address: `127.0.0.1:${policyPort}` },
    },
    identity: { issuer: idp.issuer, audience: "agentgate" },
    targets: { app: { url: target.toString() } },
  });
  const level = process.env.AGENTGATE_TEST_LOG ?? "silent";
  const proxy = createProxy({ config, logger: pino({ level }, pino.destination(2)) });
  const address = await proxy.listen();
  return { proxy, port: address.port };
}

/** Undefined when the case is refused through the gateway and nothing changed; else what went wrong. */
async function refusedThroughGateway(
  place: HidingPlace,
  principal: Principal,
  protocol: Protocol | "psql",
): Promise<{ leak?: string; seen: string }> {
  const before = await prepare(place);
  const { proxy, port } = await startGateway();
  let codes: string[];
  let detail: string;
  try {
    const token = await idp.token(principal);
    if (protocol === "psql") {
      const result = await psqlSteps(`postgresql://${principal}@127.0.0.1:${port}/app?sslmode=disable`, place, token);
      codes = result.errors;
      detail = result.stderr;
    } else {
      const client = new pg.Client({
        host: "127.0.0.1",
        port,
        database: "app",
        user: principal,
        password: token,
        query_timeout: STEP_TIMEOUT_MS,
      });
      await client.connect();
      try {
        const outcomes = await runSteps(client, place.steps, protocol);
        codes = outcomes.flatMap((o) => (o.code === undefined ? [] : [o.code]));
        detail = describeOutcomes(outcomes);
      } finally {
        await client.end();
      }
    }
  } finally {
    await proxy.close({ drainTimeoutMs: 1000 });
  }
  const afterwards = await state();
  const label = `${principal}/${protocol}`;
  const seen = `${label}: ${codes.length === 0 ? "no error" : codes.join(",")}`;
  const problems: string[] = [];
  if (afterwards !== before) problems.push(`the database changed: ${before} -> ${afterwards}`);
  if (codes.length === 0) problems.push("no statement was refused");
  else if (!REFUSALS.has(codes[0]!)) problems.push(`first error ${codes[0]} is not a refusal`);
  return problems.length === 0 ? { seen } : { seen, leak: `${label}: ${problems.join("; ")} [${detail}]` };
}

function protocolsOf(place: HidingPlace): Protocol[] {
  return place.simpleOnly ? ["simple"] : ["simple", "extended"];
}

describe("the hiding-places corpus", () => {
  it("has at least 45 distinct cases across every kind of hiding place", () => {
    const names = new Set(HIDING_PLACES.map((p) => p.name));
    assert.equal(names.size, HIDING_PLACES.length, "case names are unique");
    assert.ok(HIDING_PLACES.length >= 45, `${HIDING_PLACES.length} cases`);
    const kinds = new Set(HIDING_PLACES.map((p) => p.kind));
    for (const kind of ["view", "operator", "cast", "aggregate", "domain", "rls", "shadowed", "cursor", "nested"]) {
      assert.ok(kinds.has(kind as HidingPlace["kind"]), `a ${kind} case`);
    }
  });
});

for (const place of HIDING_PLACES) {
  describe(`${place.kind}: ${place.name}`, { timeout: 180_000 }, () => {
    it("changes the database when run directly as the upstream role (the case is live)", async (t) => {
      const problems: string[] = [];
      for (const protocol of protocolsOf(place)) {
        const problem = await liveDirectly(place, protocol);
        if (problem !== undefined) problems.push(problem);
      }
      if (place.psql) {
        const problem = await liveThroughPsqlDirectly(place);
        if (problem !== undefined) problems.push(problem);
      }
      t.diagnostic(place.mechanism);
      assert.deepEqual(problems, [], `${place.name} is not live`);
    });

    it("is refused through the gateway and the database is unchanged", async (t) => {
      const leaks: string[] = [];
      const seen: string[] = [];
      const runs: [Principal, Protocol | "psql"][] = [];
      for (const principal of ["agent", "reader"] as const) {
        for (const protocol of protocolsOf(place)) runs.push([principal, protocol]);
      }
      if (place.psql) runs.push(["agent", "psql"]);
      for (const [principal, protocol] of runs) {
        const result = await refusedThroughGateway(place, principal, protocol);
        seen.push(result.seen);
        if (result.leak !== undefined) leaks.push(result.leak);
      }
      t.diagnostic(seen.join("; "));
      assert.deepEqual(leaks, [], `${place.name} leaks`);
    });
  });
}
