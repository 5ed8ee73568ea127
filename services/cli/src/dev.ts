import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { parseConfig } from "@agentgate/config";
import { createPolicyService } from "@agentgate/policy-service";
import { createProxy } from "@agentgate/proxy";
import { selfSignedCert, startNats, startOidcProvider, startPostgres } from "@agentgate/testkit";
import { pino } from "pino";
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
  const [pg, idp, cert, nats] = await Promise.all([
    startPostgres(),
    startOidcProvider({
      audience: "agentgate",
      clients: [{ clientId: "demo-agent", clientSecret, groups: ["analysts"] }],
      accessTokenTTLSeconds: 3600,
    }),
    selfSignedCert({ commonName: "localhost" }),
    startNats(),
  ]);
  const logger = pino({ level: values["log-level"] }, pino.destination(2));
  const policy = createPolicyService({ rulesFile: POLICY.pathname, listen: "127.0.0.1:0", logger });
  try {
    const database = await pg.createDatabase("demo");
    await pg.query(readFileSync(SEED, "utf8"), [], database);
    const policyPort = (await policy.listen()).port;
    const config = parseConfig({
      proxy: {
        listen: `127.0.0.1:${port}`,
        drainTimeoutMs: 5000,
        tls: { cert: cert.certPath, key: cert.keyPath },
        policy: { address: `127.0.0.1:${policyPort}` },
        audit: { nats: nats.url },
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
        `audit bus (NATS JetStream) on ${nats.url}: every statement is recorded before it runs.`,
        "",
        "Get a token for the agent and connect with any PostgreSQL client, for example:",
        `  export PGPASSWORD=$(npx agentgate token --issuer ${idp.issuer} --client-id demo-agent --client-secret ${clientSecret})`,
        `  psql "postgresql://demo-agent@${where}/demo?sslmode=require" -c "SELECT name, email FROM customers LIMIT 5"`,
        "",
        "Ctrl-C stops everything and removes the demo database.",
        "",
      ].join("\n"),
    );
    await untilSignal(proxy);
  } finally {
    await policy.close();
    await Promise.all([pg.stop(), idp.stop(), cert.cleanup(), nats.stop()]);
  }
  return 0;
}
