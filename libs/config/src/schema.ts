import { z } from "zod";

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, "expected host:port, e.g. 127.0.0.1:6432");
const targetName = z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$/, "expected letters, digits, _ . - (max 63)");
const postgresUrl = z
  .string()
  .refine((s) => URL.canParse(s) && /^postgres(ql)?:$/.test(new URL(s).protocol), "expected a postgres:// URL");

const tlsFiles = z.strictObject({ cert: z.string().min(1), key: z.string().min(1) });

const proxySchema = z.strictObject({
  listen: hostPort.default("127.0.0.1:6432"),
  tls: tlsFiles.optional(),
  /** Names this worker in logs and events; defaults to hostname:pid. */
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
});

const targetSchema = z.strictObject({
  /** Where the gateway connects, with the credential it holds: postgres://user:password@host:port/database */
  url: postgresUrl,
});

export const configSchema = z.strictObject({
  proxy: proxySchema.default(proxySchema.parse({})),
  targets: z.record(targetName, targetSchema).refine((t) => Object.keys(t).length > 0, "at least one target"),
  log: z.strictObject({ level: z.enum(["fatal", "error", "warn", "info", "debug", "trace"]).default("info") }).default({
    level: "info",
  }),
});

export type Config = z.infer<typeof configSchema>;
export type ProxyConfig = Config["proxy"];
