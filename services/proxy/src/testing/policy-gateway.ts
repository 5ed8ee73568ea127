import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createPolicyService } from "@agentgate/policy-service";
import {
  type NatsInstance,
  type OidcProviderInstance,
  type SelfSignedCert,
  selfSignedCert,
  startNats,
  startOidcProvider,
} from "@agentgate/testkit";
import pg from "pg";
import { startTestGateway, type TestGateway } from "../testing.ts";

export interface PolicyGatewayOptions {
  /** The policy file (rules, masks, maskedPredicates), as YAML. */
  rules: string;
  /** The OIDC provider's clients: client id → groups (each client's secret is `<id>-secret`). */
  clients: Record<string, string[]>;
  /** Records every statement on a nats-server of its own (proxy.audit). */
  audit?: boolean;
  /** Masks with a fixed hash key (proxy.masking). */
  masking?: boolean;
  /** Clients sign in over TLS with a self-signed certificate (plaintext on loopback is allowed either way). */
  tls?: boolean;
  /** SQL run directly on the fresh database, as its owner, before the gateway serves anyone. */
  schema?: string;
}

/** A gateway under a real policy service and a real OIDC provider, in front of a fresh database. */
export interface PolicyGateway {
  readonly gw: TestGateway;
  readonly idp: OidcProviderInstance;
  /** The client certificate's CA and servername, with `tls`. */
  readonly ssl: { ca: string; servername: string } | undefined;
  /** Replaces the policy file and has the service apply it now; resolves whether it took. */
  setRules(yaml: string): Promise<boolean>;
  /** A connected node-postgres client signed in as `clientId` (with its token as the password). */
  connect(clientId: string, config?: pg.ClientConfig): Promise<pg.Client>;
  /** A connected client on the database itself, as its owner. */
  direct(config?: pg.ClientConfig): Promise<pg.Client>;
  close(): Promise<void>;
}

export async function startPolicyGateway(options: PolicyGatewayOptions): Promise<PolicyGateway> {
  const dir = mkdtempSync(join(tmpdir(), "agentgate-policy-gateway-"));
  const rulesFile = join(dir, "policy.yaml");
  writeFileSync(rulesFile, options.rules);
  const stops: (() => Promise<unknown> | undefined)[] = [async () => rmSync(dir, { recursive: true, force: true })];
  const close = async () => {
    for (const stop of stops.reverse()) await stop();
  };
  try {
    const policy = createPolicyService({ rulesFile, listen: "127.0.0.1:0", pollIntervalMs: 100, debounceMs: 20 });
    stops.push(() => policy.close());
    const policyPort = (await policy.listen()).port;
    const idp = await startOidcProvider({
      audience: "agentgate",
      clients: Object.entries(options.clients).map(([clientId, groups]) => ({
        clientId,
        clientSecret: `${clientId}-secret`,
        groups,
      })),
    });
    stops.push(() => idp.stop());
    let nats: NatsInstance | undefined;
    if (options.audit) {
      nats = await startNats();
      stops.push(() => nats?.stop());
    }
    let cert: SelfSignedCert | undefined;
    if (options.tls) {
      cert = await selfSignedCert({ commonName: "localhost" });
      stops.push(() => cert?.cleanup());
    }
    const gw = await startTestGateway({
      proxy: {
        allowPlaintextLoopback: true,
        ...(cert === undefined ? {} : { tls: { cert: cert.certPath, key: cert.keyPath } }),
        ...(nats === undefined ? {} : { audit: { nats: nats.url } }),
        ...(options.masking ? { masking: { hashKey: "k".repeat(32) } } : {}),
        policy: { address: `127.0.0.1:${policyPort}` },
      },
      identity: { issuer: idp.issuer, audience: "agentgate" },
    });
    stops.push(() => gw.close());
    const ssl = cert === undefined ? undefined : { ca: cert.cert, servername: "localhost" };
    const direct = async (config: pg.ClientConfig = {}) => {
      const client = new pg.Client({ ...config, connectionString: gw.directUrl });
      await client.connect();
      return client;
    };
    if (options.schema !== undefined) {
      const client = await direct();
      await client.query(options.schema).finally(() => client.end());
    }
    return {
      gw,
      idp,
      ssl,
      async setRules(yaml) {
        writeFileSync(rulesFile, yaml);
        return (await policy.reload()).ok;
      },
      async connect(clientId, config = {}) {
        const client = new pg.Client({
          host: "127.0.0.1",
          port: gw.port,
          user: clientId,
          database: "app",
          password: await idp.token(clientId),
          ...(ssl === undefined ? {} : { ssl }),
          ...config,
        });
        await client.connect();
        return client;
      },
      direct,
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
