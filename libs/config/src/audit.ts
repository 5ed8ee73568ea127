import { z } from "zod";

const url = (protocols: RegExp, example: string) =>
  z.string().refine((s) => URL.canParse(s) && protocols.test(new URL(s).protocol), `expected a ${example} URL`);
const natsUrl = url(/^(nats|tls):$/, "nats://");
const postgresUrl = url(/^postgres(ql)?:$/, "postgres://");
const schemaName = z.string().regex(/^[a-z_][a-z0-9_]{0,47}$/, "expected a lowercase identifier ([a-z_][a-z0-9_]*)");

/** The `audit` section of agentgate.yaml: the bus, the event store, the read models and the checkpoint keys. */
export const auditConfigSchema = z.strictObject({
  /** NATS server(s) with JetStream. */
  nats: z.union([natsUrl, z.array(natsUrl).min(1)]),
  /** The event store's PostgreSQL, as its writer role (INSERT and SELECT on the events table). */
  store: postgresUrl,
  /** The event store's schema. */
  schema: schemaName.default("agentgate"),
  /** Where the read models live; default the store's database (the role needs CREATE there). */
  readStore: postgresUrl.optional(),
  readSchema: schemaName.default("agentgate_read"),
  /** Ed25519 public key (PEM file) that verifies checkpoints and goes into exported bundles. */
  publicKey: z.string().min(1).optional(),
  /** Ed25519 private key (PEM file) the ingester's store signs checkpoints with; keep it off the database host. */
  signingKey: z.string().min(1).optional(),
  /** The ingester's JetStream durable consumer; one ingester per durable. */
  durable: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}$/, "expected letters, digits, _ or - (max 64)")
    .default("audit-ingester"),
  /** Replicas of the audit stream (3 on a JetStream cluster). */
  replicas: z.number().int().min(1).max(5).default(1),
  /**
   * How often the audit service looks for proxy workers whose heartbeats stopped (proxy.audit.heartbeatMs) with
   * sessions open, and records those sessions as ended (worker lost); 0 turns it off.
   */
  livenessIntervalMs: z.number().int().min(0).default(5000),
});

export type AuditConfig = z.infer<typeof auditConfigSchema>;
