// What the gateway-full target runs with: one agentgate.yaml for the proxy, the policy service and the audit
// service (as one deployment shares it), the policy file with its rules and masks, and what a run must find in the
// audit afterwards. Pure: no I/O, so the unit test checks the files against the real schemas.
import { stringify } from "yaml";
import type { Workload } from "./pgbench.ts";

/** The database name pgbench uses to reach the benchmark target through the gateway. */
export const fullTarget = "bench";

/** The OIDC audience the proxy accepts. */
export const fullAudience = "agentgate";

/**
 * The two pgbench principals (client-credentials clients of the test OIDC provider). Both may read and write the
 * pgbench tables; `masked` is subject to every mask, `exempt` is in the group the mask on the table pgbench reads
 * exempts, so for it no statement touches a masked relation while masking is still on (the other mask applies).
 */
export const fullPrincipals = {
  masked: { clientId: "loadtest", groups: ["loadtest"] },
  exempt: { clientId: "loadtest-exempt", groups: ["loadtest", "loadtest-unmasked"] },
} as const;

/** A column of a table the workload never reads (created by the harness); masked for both principals. */
export const untouchedMask = "public.customers.ssn";
/**
 * The column of the table every pgbench SELECT reads (`SELECT abalance FROM pgbench_accounts WHERE aid = ...`): for
 * the masked principal each such statement touches a masked relation and has its one value redacted.
 */
export const touchedMask = "public.pgbench_accounts.filler";

/** The table behind `untouchedMask`, made in the benchmark database before the gateway starts. */
export const customersSql = `CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, ssn text NOT NULL);
INSERT INTO customers SELECT i, 'customer ' || i, lpad((i * 7919 % 1000000000)::text, 9, '0')
  FROM generate_series(1, 1000) AS i`;

/** The policy file: allow what pgbench does (and nothing else: writes only to its tables), and the two masks. */
export function fullPolicyYaml(): string {
  return stringify({
    rules: [
      {
        name: "loadtest-read",
        match: { groups: ["loadtest"], classes: ["read", "session", "transaction"] },
        effect: "allow",
      },
      {
        name: "loadtest-write-pgbench",
        match: { groups: ["loadtest"], classes: ["write"], relations: ["pgbench_*"] },
        effect: "allow",
      },
    ],
    masks: [
      { column: untouchedMask, strategy: "redact" },
      { column: touchedMask, strategy: "redact", groups: { unmasked: ["loadtest-unmasked"] } },
    ],
  });
}

export interface FullConfigInput {
  /** Ports on 127.0.0.1. */
  proxyPort: number;
  policyPort: number;
  /** The benchmark database, with the credential the gateway holds. */
  targetUrl: string;
  issuer: string;
  natsUrl: string;
  /** The event store as its writer role (INSERT and SELECT only). */
  storeUrl: string;
  /** The same database as its owner, for the read models (the role needs CREATE). */
  readStoreUrl: string;
  /** Files beside the config: the rules, the checkpoint keys. */
  rulesFile: string;
  signingKey: string;
  publicKey: string;
  /** proxy.masking.hashKey, at least 32 characters. */
  hashKey: string;
}

/**
 * agentgate.yaml for the three processes: `agentgate proxy` reads all of it, `agentgate policy` its `policy:`
 * section, `agentgate audit run` its `audit:` section. Tokens go over plain TCP (allowPlaintextLoopback, loopback
 * only), as every other target runs without TLS: the comparison is of the gateway's work, not of TLS.
 */
export function fullConfigYaml(input: FullConfigInput): string {
  const policyAddress = `127.0.0.1:${input.policyPort}`;
  return stringify({
    proxy: {
      listen: `127.0.0.1:${input.proxyPort}`,
      allowPlaintextLoopback: true,
      policy: { address: policyAddress },
      audit: { nats: input.natsUrl },
      masking: { hashKey: input.hashKey },
    },
    identity: { issuer: input.issuer, audience: fullAudience },
    targets: { [fullTarget]: { url: input.targetUrl } },
    policy: { listen: policyAddress, rulesFile: input.rulesFile },
    audit: {
      nats: input.natsUrl,
      store: input.storeUrl,
      schema: "agentgate",
      readStore: input.readStoreUrl,
      signingKey: input.signingKey,
      publicKey: input.publicKey,
    },
  });
}

/**
 * Statements pgbench sends per transaction, each one a StatementReceived in the audit: select-only is one SELECT;
 * TPC-B-like is BEGIN, three UPDATEs, a SELECT, an INSERT and END.
 */
export function statementsPerTransaction(workload: Workload): number {
  return workload === "select-only" ? 1 : 7;
}

/** What the audit recorded during one run, against what pgbench says it completed. */
export interface AuditCount {
  /** StatementReceived events the ingester stored for the run. */
  recorded: number;
  /** pgbench's completed transactions × statements per transaction. */
  expected: number;
  /** From the end of the pgbench run until the store stopped growing, in milliseconds. */
  lagMs: number;
}

/**
 * Why a run's audit is not to be trusted, or undefined when every completed statement is in the store. More than
 * expected is normal: pgbench's own start-up queries, and transactions cut off by the end of the run, are recorded
 * but not counted by pgbench. Fewer means statements ran without their record reaching the store.
 */
export function auditShortfall(count: AuditCount): string | undefined {
  if (count.recorded >= count.expected) return undefined;
  return `the audit recorded ${count.recorded} of ${count.expected} statements (${count.expected - count.recorded} missing)`;
}
