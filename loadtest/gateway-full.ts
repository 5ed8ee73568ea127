// The gateway-full target: the whole product on the data path, each piece as its own process the way a deployment
// runs it. A nats-server with JetStream and an OIDC provider (test kit), an event store in a second throwaway
// PostgreSQL, `agentgate policy`, `agentgate audit run` and `agentgate proxy`, all with one agentgate.yaml.
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { migrate } from "@agentgate/eventstore";
import {
  freePort,
  type NatsInstance,
  type OidcProviderInstance,
  type PostgresInstance,
  spawnServer,
  startNats,
  startOidcProvider,
  startPostgres,
  waitForPort,
} from "@agentgate/testkit";
import pg from "pg";
import { childServerPid } from "./cpu.ts";
import { type AuditCount, customersSql, fullConfigYaml, fullPolicyYaml, fullPrincipals } from "./full-config.ts";
import { gatewayEntry } from "./gateway.ts";
import { makeTempDir, stopChild, tail } from "./processes.ts";

/** The processes of the stack whose CPU is charged to a gateway-full run, in report order. */
export const fullComponents = ["proxy", "policy", "nats", "audit", "store"] as const;
export type FullComponent = (typeof fullComponents)[number];

/** The event store's database and schema, and the type of the event counted after each run. */
const STORE_DATABASE = "agentgate_audit";
const STORE_SCHEMA = "agentgate";
const STATEMENT_RECEIVED = "agentgate.v1.StatementReceived";

/** The store must stop growing for this long after a run before it is counted. */
const SETTLED_MS = 1_000;
/** Give up waiting when the store has not grown for this long and still holds fewer than expected. */
const STALLED_MS = 15_000;
const POLL_MS = 200;

export interface FullStack {
  host: string;
  port: number;
  /** The pid of every process whose CPU is charged to a run. */
  pids: Record<FullComponent, number>;
  /** A fresh access token for one of fullPrincipals (client credentials), used as pgbench's password. */
  token(clientId: string): Promise<string>;
  /** The store's last position: a run's statements are the ones appended after it. */
  auditMark(): Promise<bigint>;
  /**
   * Waits until the ingester has stored what a run sent (the store stops growing, with at least `expected`
   * statements after `mark`, or stalls), then counts the run's StatementReceived events. `onQuiet` runs once, as
   * soon as the store has stopped growing and before the first count, so CPU read there excludes the counting.
   */
  settle(mark: bigint, expected: number, pgbenchEndedAt: number, onQuiet: () => void): Promise<AuditCount>;
  stop(): Promise<void>;
}

export interface FullStackOptions {
  /** The benchmark's PostgreSQL and the database pgbench -i filled. */
  bench: PostgresInstance;
  dbname: string;
  /** Lifetime of the access tokens: longer than one pgbench run, since the gateway ends a session at expiry. */
  tokenTtlSeconds: number;
  log(line: string): void;
}

/** Steps to undo, last first; each runs even if one before it failed. */
function undoStack() {
  const steps: Array<() => Promise<void> | void> = [];
  return {
    push: (step: () => Promise<void> | void) => steps.push(step),
    async run() {
      for (const step of steps.splice(0).reverse()) {
        try {
          await step();
        } catch {
          // The rest must still be stopped; the harness reports what it can.
        }
      }
    },
  };
}

/** Waits until `text` shows in a log file (for a process that opens no port); throws if the process exits. */
async function waitForLog(
  path: string,
  text: string,
  child: { exitCode: number | null; signalCode: NodeJS.Signals | null },
  what: string,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (existsSync(path) && readFileSync(path, "utf8").includes(text)) return;
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${what} exited (code ${child.exitCode}, signal ${child.signalCode})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${what} did not log "${text}" within ${timeoutMs} ms`);
}

/**
 * Runs `node services/cli/bin/agentgate.js <command> --config <file>`, its stdout and stderr into `logPath`, tied
 * to our lifetime (parent-death signal), and waits until it is ready.
 */
async function startCli(
  command: string[],
  configPath: string,
  logPath: string,
  ready: { port: number } | { logLine: string },
  undo: ReturnType<typeof undoStack>,
): Promise<number> {
  const what = `agentgate ${command.join(" ")}`;
  const log = openSync(logPath, "w");
  const child = spawnServer(process.execPath, [gatewayEntry, ...command, "--config", configPath], {
    unprivileged: false,
    stdio: ["ignore", log, log],
  });
  closeSync(log);
  undo.push(() => stopChild(child));
  try {
    if ("port" in ready) await waitForPort(ready.port, child, what);
    else await waitForLog(logPath, ready.logLine, child, what);
  } catch (error) {
    throw new Error(`${what} did not start; log:\n${tail(logPath)}`, { cause: error });
  }
  return child.pid ?? 0;
}

/** postmaster.pid's first line: the postmaster, parent of every backend. */
function postmasterPid(postgres: PostgresInstance): number {
  return Number(readFileSync(join(postgres.dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
}

/**
 * The event store in its own throwaway PostgreSQL (not the benchmark's: the ingester's appends then neither share
 * the benchmark server's buffers, WAL and locks nor hide in its CPU, and the store's CPU is a column of its own),
 * migrated as its owner with a writer role that may only insert and read, and an Ed25519 checkpoint key pair.
 */
async function startEventStore(dir: string, undo: ReturnType<typeof undoStack>) {
  const store = await startPostgres({ settings: { shared_buffers: "128MB", max_wal_size: "4GB" } });
  undo.push(() => store.stop());
  await store.createDatabase(STORE_DATABASE);
  const writerPassword = randomBytes(18).toString("base64url");
  await migrate(store.url(STORE_DATABASE), { schema: STORE_SCHEMA, writerRole: "agentgate_writer", writerPassword });
  const writer = new URL(store.url(STORE_DATABASE));
  writer.username = "agentgate_writer";
  writer.password = writerPassword;
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const signingKey = join(dir, "audit.key");
  const publicKeyPath = join(dir, "audit.pub");
  writeFileSync(signingKey, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
  writeFileSync(publicKeyPath, publicKey.export({ type: "spki", format: "pem" }));
  return { store, storeUrl: writer.toString(), signingKey, publicKey: publicKeyPath };
}

/** Starts every piece, in dependency order; on any failure stops what already runs. */
export async function startGatewayFull(options: FullStackOptions): Promise<FullStack> {
  const undo = undoStack();
  try {
    const { path: dir, remove } = makeTempDir("agentgate-gateway-full-");
    undo.push(remove);
    await options.bench.query(customersSql, [], options.dbname);

    const nats: NatsInstance = await startNats();
    undo.push(() => nats.stop());
    const oidc: OidcProviderInstance = await startOidcProvider({
      audience: "agentgate",
      clients: Object.values(fullPrincipals).map((principal) => ({
        clientId: principal.clientId,
        clientSecret: randomBytes(12).toString("base64url"),
        groups: [...principal.groups],
      })),
      accessTokenTTLSeconds: options.tokenTtlSeconds,
    });
    undo.push(() => oidc.stop());
    const eventStore = await startEventStore(dir, undo);

    const [proxyPort, policyPort] = [await freePort(), await freePort()];
    const configPath = join(dir, "agentgate.yaml");
    const rulesFile = join(dir, "policy.yaml");
    writeFileSync(rulesFile, fullPolicyYaml());
    writeFileSync(
      configPath,
      fullConfigYaml({
        proxyPort,
        policyPort,
        targetUrl: options.bench.url(options.dbname),
        issuer: oidc.issuer,
        natsUrl: nats.url,
        storeUrl: eventStore.storeUrl,
        readStoreUrl: eventStore.store.url(STORE_DATABASE),
        rulesFile,
        signingKey: eventStore.signingKey,
        publicKey: eventStore.publicKey,
        hashKey: randomBytes(32).toString("base64"),
      }),
      { mode: 0o600 },
    );

    const policyPid = await startCli(["policy"], configPath, join(dir, "policy.log"), { port: policyPort }, undo);
    const auditPid = await startCli(
      ["audit", "run"],
      configPath,
      join(dir, "audit.log"),
      { logLine: "ingesting audit events" },
      undo,
    );
    const proxyPid = await startCli(["proxy"], configPath, join(dir, "proxy.log"), { port: proxyPort }, undo);
    options.log(
      `gateway-full: proxy on 127.0.0.1:${proxyPort} (pid ${proxyPid}), policy pid ${policyPid}, ` +
        `audit pid ${auditPid}, nats-server ${nats.url}, event store on 127.0.0.1:${eventStore.store.port}, ` +
        `OIDC ${oidc.issuer}; config ${configPath}`,
    );

    // One connection for every count, so polling costs the store a query, not a backend each time.
    const counter = new pg.Client({ connectionString: eventStore.store.url(STORE_DATABASE) });
    counter.on("error", () => {});
    await counter.connect();
    undo.push(() => counter.end());
    const events = `${STORE_SCHEMA}.events`;
    const lastPosition = async (): Promise<bigint> => {
      const { rows } = await counter.query<{ p: string }>(`SELECT coalesce(max(position), 0) AS p FROM ${events}`);
      return BigInt(rows[0]?.p ?? 0);
    };
    const statementsAfter = async (mark: bigint): Promise<number> => {
      const { rows } = await counter.query<{ n: string }>(
        `SELECT count(*) AS n FROM ${events} WHERE position > $1 AND type = $2`,
        [mark.toString(), STATEMENT_RECEIVED],
      );
      return Number(rows[0]?.n ?? 0);
    };

    return {
      host: "127.0.0.1",
      port: proxyPort,
      pids: {
        proxy: proxyPid,
        policy: policyPid,
        nats: childServerPid(process.pid, "nats-server", nats.port),
        audit: auditPid,
        store: postmasterPid(eventStore.store),
      },
      token: (clientId) => oidc.token(clientId),
      auditMark: lastPosition,
      async settle(mark, expected, pgbenchEndedAt, onQuiet) {
        let position = await lastPosition();
        let grewAt = Date.now();
        let quietSeen = false;
        let recorded = 0;
        for (;;) {
          await new Promise((resolve) => setTimeout(resolve, POLL_MS));
          const now = await lastPosition();
          if (now !== position) {
            position = now;
            grewAt = Date.now();
            continue;
          }
          const quiet = Date.now() - grewAt;
          if (quiet < SETTLED_MS) continue;
          if (!quietSeen) {
            quietSeen = true;
            onQuiet();
          }
          // Counting scans the run's rows: only once the store is quiet, and then at most once a second.
          recorded = await statementsAfter(mark);
          if (recorded >= expected || quiet >= STALLED_MS) break;
          await new Promise((resolve) => setTimeout(resolve, SETTLED_MS));
        }
        return { recorded, expected, lagMs: Math.max(0, grewAt - pgbenchEndedAt) };
      },
      stop: () => undo.run(),
    };
  } catch (error) {
    await undo.run();
    throw error;
  }
}
