import { policyServiceSchema } from "@agentgate/policy";
import { z } from "zod";
import { auditConfigSchema } from "./audit.ts";

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, "expected host:port, e.g. 127.0.0.1:6432");
const targetName = z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$/, "expected letters, digits, _ . - (max 63)");
const postgresUrl = z
  .string()
  .refine((s) => URL.canParse(s) && /^postgres(ql)?:$/.test(new URL(s).protocol), "expected a postgres:// URL");

const tlsFiles = z.strictObject({ cert: z.string().min(1), key: z.string().min(1) });

const proxySchema = z.strictObject({
  listen: hostPort.default("127.0.0.1:6432"),
  tls: tlsFiles.optional(),
  /**
   * Names this worker in logs and events; defaults to hostname:pid. Unique per running process: the audit service
   * takes a heartbeat from a later start under the same id as the end of the earlier one (its sessions: worker lost).
   */
  workerId: z.string().min(1).optional(),
  /** Largest protocol message accepted in either direction, in bytes. */
  maxMessageSize: z
    .number()
    .int()
    .min(8192)
    .max(1024 ** 3)
    .default(256 * 1024 ** 2),
  /** A client must finish the startup handshake within this many milliseconds. */
  startupTimeoutMs: z.number().int().min(100).default(30_000),
  /** Close sessions idle (outside a query) for this many milliseconds; 0 never closes them. */
  idleSessionTimeoutMs: z.number().int().min(0).default(0),
  /** Opening the upstream connection, including its sign-in, must finish within this many milliseconds. */
  connectTimeoutMs: z.number().int().min(100).default(10_000),
  /** On shutdown, sessions get this long to finish what they are running before they are closed. */
  drainTimeoutMs: z.number().int().min(0).default(30_000),
  /**
   * Accept tokens over plain TCP from loopback clients on a loopback listener (tests, sidecars). Everywhere else a
   * token is only asked for inside TLS.
   */
  allowPlaintextLoopback: z.boolean().default(false),
  /** The policy service that decides statements; without it every statement passes (development only). */
  policy: z
    .strictObject({
      /** host:port of the policy service's gRPC endpoint. */
      address: hostPort,
      /** A decision that takes longer refuses the statement. */
      deadlineMs: z.number().int().min(10).default(2000),
    })
    .optional(),
  /** The approval service: statements whose decision is require_approval wait for humans there. */
  approval: z
    .strictObject({
      /** host:port of the approval service's gRPC endpoint. */
      address: hostPort,
      /** How long a held statement waits for a decision before it is refused (and the request expires). */
      timeoutMs: z.number().int().min(1000).default(300_000),
      /**
       * wait: the session holds the statement until it is decided; deferred: the statement is refused at once with
       * the approval's id, and once approved the same principal may run that exact statement once (until the
       * request's timeout).
       */
      mode: z.enum(["wait", "deferred"]).default("wait"),
      /** A call to the service (not the wait) that takes longer fails the statement. */
      deadlineMs: z.number().int().min(10).default(5000),
    })
    .optional(),
  /** Masking of result columns (the rules come from the policy service with each decision). */
  masking: z
    .strictObject({
      /**
       * Key of the keyed hash behind the `hash` strategy (HMAC-SHA256), at least 32 characters; give it from a
       * secret (${VAR}). Every worker needs the same key for hashed values to match across sessions. Without it a
       * random key is made per process.
       */
      hashKey: z.string().min(32, "at least 32 characters"),
    })
    .optional(),
  /** The audit bus: every statement is recorded there, and acknowledged, before it reaches the database. */
  audit: z
    .strictObject({
      /** nats:// URL(s) of the NATS JetStream cluster. */
      nats: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
      /** A record not acknowledged within this time refuses its statement (SQLSTATE 57P03). */
      ackTimeoutMs: z.number().int().min(10).default(2000),
      /** Replicas of the audit stream when the proxy creates it (3 in a cluster). */
      replicas: z.number().int().min(1).max(5).default(1),
      /**
       * How often the worker records that it is alive; the audit service ends the open sessions of a worker silent
       * for three intervals (worker lost).
       */
      heartbeatMs: z.number().int().min(100).max(600_000).default(10_000),
    })
    .optional(),
});

const targetTlsSchema = z.strictObject({
  /** disable: plain TCP; require: TLS without checking the certificate; verify-ca: signed by `ca`; verify-full: and the host name matches. */
  mode: z.enum(["disable", "require", "verify-ca", "verify-full"]).default("verify-full"),
  /** PEM file of the CA that signed the target's certificate (verify-ca, verify-full); default: the system's CAs. */
  ca: z.string().min(1).optional(),
});

const targetSchema = z.strictObject({
  /** Where the gateway connects, with the credential it holds: postgres://user:password@host:port/database */
  url: postgresUrl,
  tls: targetTlsSchema.optional(),
});

const identitySchema = z.strictObject({
  /** The OIDC issuer whose access tokens agents present; discovery reads its metadata and JWKS. */
  issuer: z.url(),
  /** The audience tokens must be issued for. */
  audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
  /** Claim holding the principal's groups; a dotted path such as realm_access.roles works too. */
  groupsClaim: z.string().min(1).default("groups"),
  /** Signature algorithms accepted; asymmetric only. */
  algorithms: z
    .array(z.enum(["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]))
    .min(1)
    .optional(),
  /** Allowed clock difference for exp and nbf, in seconds. */
  clockToleranceSeconds: z.number().int().min(0).max(300).default(30),
  /** Check opaque (non-JWT) tokens by RFC 7662 introspection with these client credentials. */
  introspection: z.strictObject({ clientId: z.string().min(1), clientSecret: z.string().min(1) }).optional(),
});

export const configSchema = z.strictObject({
  proxy: proxySchema.default(proxySchema.parse({})),
  /** The audit pipeline (`agentgate audit run`, sessions, replay, export, verify): bus, event store, read models. */
  audit: auditConfigSchema.optional(),
  /** The policy service (`agentgate policy`): where it listens and its rules, inline or in a file. */
  policy: policyServiceSchema.optional(),
  /** Without it, the gateway admits only loopback clients, without a password (development only). */
  identity: identitySchema.optional(),
  targets: z.record(targetName, targetSchema).refine((t) => Object.keys(t).length > 0, "at least one target"),
  log: z.strictObject({ level: z.enum(["fatal", "error", "warn", "info", "debug", "trace"]).default("info") }).default({
    level: "info",
  }),
});

export type Config = z.infer<typeof configSchema>;
export type ProxyConfig = Config["proxy"];
export type IdentityConfig = NonNullable<Config["identity"]>;
