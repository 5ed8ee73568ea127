import { generateKeyPairSync, randomBytes } from "node:crypto";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createApprovalService } from "@agentgate/approval";
import { createAuditService } from "@agentgate/audit";
import { auditConfigSchema, parseConfig } from "@agentgate/config";
import { createPostgresEventStore, migrate } from "@agentgate/eventstore";
import { createTokenVerifier } from "@agentgate/identity";
import { createPolicyService } from "@agentgate/policy-service";
import { createProxy } from "@agentgate/proxy";
import { selfSignedCert, startNats, startOidcProvider, startPostgres } from "@agentgate/testkit";
import { type Logger, pino } from "pino";
import { untilSignal } from "./proxy.ts";
import { UsageError } from "./usage.ts";

const SEED = new URL("../../../infra/demo/seed.sql", import.meta.url);
const POLICY = new URL("../../../infra/demo/policy.yaml", import.meta.url);

/** `agentgate dev`: a throwaway PostgreSQL with sample data, behind a gateway, until Ctrl-C. */
export async function runDev(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: "string", short: "p", default: "6432" },
      "log-level": { type: "string", default: "info" },
    },
    strict: true,
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port: not a port: ${values.port}`);

  process.stderr.write("starting a throwaway PostgreSQL, an OIDC provider and a gateway for the demo...\n");
  const clientSecret = randomBytes(12).toString("base64url");
  const dbaSecret = randomBytes(12).toString("base64url");
  const [pg, idp, cert, nats] = await Promise.all([
    startPostgres(),
    startOidcProvider({
      audience: "agentgate",
      clients: [
        { clientId: "demo-agent", clientSecret, groups: ["analysts"] },
        { clientId: "demo-dba", clientSecret: dbaSecret, groups: ["dbas"] },
      ],
      accessTokenTTLSeconds: 3600,
    }),
    selfSignedCert({ commonName: "localhost" }),
    startNats(),
  ]);
  const logger = pino({ level: values["log-level"] }, pino.destination(2));
  const policy = createPolicyService({ rulesFile: POLICY.pathname, listen: "127.0.0.1:0", logger });
  const cleanups: (() => unknown)[] = [];
  try {
    const database = await pg.createDatabase("demo");
    await pg.query(readFileSync(SEED, "utf8"), [], database);
    const policyPort = (await policy.listen()).port;
    const demoDir = mkdtempSync(join(tmpdir(), "agentgate-dev-"));
    cleanups.push(() => rmSync(demoDir, { recursive: true, force: true }));
    const auditSection = await startDemoAudit(pg, nats.url, demoDir, logger);
    cleanups.push(() => auditSection.service.stop());
    // The approval service, on the audit's event store; approvers sign in with the demo's OIDC provider.
    const approvalStore = createPostgresEventStore({ connectionString: auditSection.store, schema: "agentgate" });
    const approvals = createApprovalService({
      store: approvalStore,
      listen: "127.0.0.1:0",
      verifier: await createTokenVerifier({
        issuer: idp.issuer,
        audience: "agentgate",
        groupsClaim: "groups",
        allowInsecureLoopbackIssuer: true,
      }),
      logger,
    });
    const approvalAddress = (await approvals.listen()).address;
    cleanups.push(async () => {
      await approvals.close();
      await approvalStore.close();
    });
    appendFileSync(
      auditSection.configPath,
      `approval: ${JSON.stringify({ listen: approvalAddress, store: auditSection.store, schema: "agentgate" })}\n`,
    );
    const config = parseConfig({
      proxy: {
        listen: `127.0.0.1:${port}`,
        drainTimeoutMs: 5000,
        tls: { cert: cert.certPath, key: cert.keyPath },
        policy: { address: `127.0.0.1:${policyPort}` },
        audit: { nats: nats.url },
        approval: { address: approvalAddress },
        masking: { hashKey: randomBytes(32).toString("base64") },
      },
      identity: { issuer: idp.issuer, audience: "agentgate" },
      targets: { demo: { url: pg.url(database) } },
      log: { level: values["log-level"] },
    });
    const proxy = createProxy({ config, logger });
    const address = await proxy.listen();
    const where = `${address.address}:${address.port}`;
    process.stdout.write(
      [
        "",
        `agentgate dev is running: gateway on ${where}, target "demo" (PostgreSQL ${pg.version.split(" ")[0]}, sample data),`,
        `OIDC provider on ${idp.issuer} with one agent client, demo-agent (group analysts);`,
        `policy service on 127.0.0.1:${policyPort} with the rules of infra/demo/policy.yaml (edit it: changes apply live);`,
        `audit bus (NATS JetStream) on ${nats.url}: every statement is recorded before it runs, then ingested into`,
        "a hash-chained event store. See it with:",
        `  npx agentgate sessions list --config ${auditSection.configPath}`,
        `  npx agentgate replay <session-id> --config ${auditSection.configPath}`,
        `  npx agentgate audit verify --store --config ${auditSection.configPath}`,
        "",
        "Get a token for the agent and connect with any PostgreSQL client, for example:",
        `  export PGPASSWORD=$(npx agentgate token --issuer ${idp.issuer} --client-id demo-agent --client-secret ${clientSecret})`,
        `  psql "postgresql://demo-agent@${where}/demo?sslmode=require" -c "SELECT name, email FROM customers LIMIT 5"`,
        "",
        `Deleting orders waits for a DBA (approval service on ${approvalAddress}). While psql waits on`,
        `  psql "postgresql://demo-agent@${where}/demo?sslmode=require" -c "DELETE FROM orders WHERE id < 10"`,
        "approve it in another terminal as the demo DBA:",
        `  export AGENTGATE_TOKEN=$(npx agentgate token --issuer ${idp.issuer} --client-id demo-dba --client-secret ${dbaSecret})`,
        `  npx agentgate approvals list --config ${auditSection.configPath}`,
        `  npx agentgate approvals approve <id> --config ${auditSection.configPath}`,
        "",
        "Ctrl-C stops everything and removes the demo database.",
        "",
      ].join("\n"),
    );
    await untilSignal(proxy);
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup();
    await policy.close();
    await Promise.all([pg.stop(), idp.stop(), cert.cleanup(), nats.stop()]);
  }
  return 0;
}

/**
 * The demo's audit pipeline: an event store in its own database (with a writer role), an Ed25519 checkpoint key, the
 * ingester and the read models, and a config file the audit commands can use.
 */
async function startDemoAudit(
  pg: Awaited<ReturnType<typeof startPostgres>>,
  nats: string,
  dir: string,
  logger: Logger,
) {
  const database = await pg.createDatabase("agentgate_audit");
  const writerPassword = randomBytes(12).toString("base64url");
  await migrate(pg.url(database), { schema: "agentgate", writerRole: "agentgate_writer", writerPassword });
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const signingKey = join(dir, "audit.key");
  const publicKeyPath = join(dir, "audit.pub");
  writeFileSync(signingKey, privateKey.export({ type: "pkcs8", format: "pem" }), { mode: 0o600 });
  writeFileSync(publicKeyPath, publicKey.export({ type: "spki", format: "pem" }));
  const writer = new URL(pg.url(database));
  writer.username = "agentgate_writer";
  writer.password = writerPassword;
  const section = {
    nats,
    store: writer.toString(),
    schema: "agentgate",
    readStore: pg.url(database),
    signingKey,
    publicKey: publicKeyPath,
  };
  const service = createAuditService(auditConfigSchema.parse(section), logger);
  await service.start();
  const configPath = join(dir, "agentgate.yaml");
  writeFileSync(configPath, `audit: ${JSON.stringify(section)}\n`, { mode: 0o600 });
  return { service, configPath, store: section.store };
}
