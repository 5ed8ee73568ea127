import { readFileSync } from "node:fs";
import { type AuditConfig, createAuditService, createProjector } from "@agentgate/audit";
import { ConfigError } from "@agentgate/config";
import {
  createPostgresEventStore,
  exportBundle,
  type PublicKeyInput,
  type VerifyResult,
  verifyBundle,
  verifyStore,
} from "@agentgate/eventstore";
import { pino } from "pino";
import { auditConfig, type Io, options, STDIO, timeOption } from "./sessions.ts";
import { UsageError } from "./usage.ts";

const USAGE = `usage: agentgate audit <subcommand> [options]

subcommands:
  export --out DIR [--since WHEN] [--until WHEN]   write the events recorded in [since, until) as a bundle
  verify DIR [--public-key FILE]                   check an exported bundle offline (exit 0 intact, 1 broken)
  verify --store                                   check the whole event store (exit 0 intact, 1 broken)
  run [--log-level L]                              run the ingester (NATS -> event store) and the read models
  rebuild                                          drop the read models and replay the event store into them

WHEN is an ISO 8601 time or a duration back from now (30m, 1h, 2d). Every subcommand but "verify DIR" reads the
audit section of --config FILE (default: AGENTGATE_CONFIG); "verify DIR" uses its public key when one is given.
`;

type Subcommand = (args: string[], io: Io) => Promise<number>;

const subcommands: Record<string, Subcommand> = {
  export: runExport,
  verify: runVerify,
  run: runService,
  rebuild: runRebuild,
};

/** `agentgate audit export|verify|run|rebuild`. */
export async function runAudit(args: string[], io: Io = STDIO): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined || ["help", "--help", "-h"].includes(name)) {
    io.out.write(USAGE);
    return name === undefined ? 2 : 0;
  }
  const subcommand = subcommands[name];
  if (subcommand === undefined) throw new UsageError(`unknown subcommand "${name}" (export, verify, run, rebuild)`);
  return subcommand(rest, io);
}

async function runExport(args: string[], io: Io): Promise<number> {
  const { values, positionals } = options(args, {
    out: { type: "string", short: "o" },
    since: { type: "string" },
    until: { type: "string" },
    config: { type: "string", short: "c" },
  });
  noPositionals(positionals);
  if (values.out === undefined) throw new UsageError("--out DIR is required");
  const since = values.since === undefined ? undefined : timeOption("--since", values.since);
  const until = values.until === undefined ? undefined : timeOption("--until", values.until);
  const config = auditConfig(values.config);
  const store = createPostgresEventStore({ connectionString: config.store, schema: config.schema });
  try {
    const manifest = await exportBundle(store, { since, until, out: values.out, publicKey: publicKeyOf(config) });
    const { fromPosition, toPosition } = manifest.range;
    io.out.write(
      manifest.count === 0
        ? `no events in that range; wrote an empty bundle to ${values.out}\n`
        : `exported ${manifest.count} events (positions ${fromPosition}..${toPosition}, ` +
            `${manifest.checkpoints.length} signed checkpoint(s)) to ${values.out}\n` +
            `head ${manifest.head?.position} ${manifest.head?.hash}\n`,
    );
    return 0;
  } catch (error) {
    io.err.write(`agentgate audit export: ${(error as Error).message}\n`);
    return 1;
  } finally {
    await store.close();
  }
}

async function runVerify(args: string[], io: Io): Promise<number> {
  const { values, positionals } = options(args, {
    store: { type: "boolean" },
    "public-key": { type: "string" },
    config: { type: "string", short: "c" },
  });
  const [dir, ...extra] = positionals;
  if (extra.length > 0 || (dir === undefined) === (values.store !== true)) {
    throw new UsageError("verify takes either a bundle directory or --store");
  }
  let result: VerifyResult;
  try {
    result = await verify(dir, values);
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError) throw error;
    io.err.write(`agentgate audit verify: cannot verify: ${(error as Error).message}\n`);
    return 1;
  }
  if (!result.ok) {
    const where = result.position === 0n ? " (the bundle as a whole)" : ` at position ${result.position}`;
    io.out.write(`BROKEN${where}: ${result.reason}\n`);
    return 1;
  }
  const head = result.head === undefined ? "empty" : `head ${result.head.position} ${result.head.hash}`;
  const signatures = {
    verified: "signatures verified with the given key",
    "self-asserted": "signatures checked only against the bundle's own key: pass --public-key to trust them",
    unchecked: "signatures not checked: no public key",
  }[result.signatures];
  io.out.write(`intact: ${result.events} events, ${head}, ${result.checkpoints} checkpoint(s); ${signatures}\n`);
  return 0;
}

async function verify(
  dir: string | undefined,
  values: { "public-key"?: string | undefined; config?: string | undefined },
): Promise<VerifyResult> {
  if (dir !== undefined) {
    // Offline: a config is optional, and only lends its public key.
    const file = values.config ?? process.env.AGENTGATE_CONFIG;
    const fromConfig = file === undefined || file === "" ? undefined : publicKeyOf(auditConfig(file));
    const publicKey = values["public-key"] === undefined ? fromConfig : readKey(values["public-key"], "--public-key");
    return verifyBundle(dir, { publicKey });
  }
  const config = auditConfig(values.config);
  const publicKey =
    values["public-key"] === undefined ? publicKeyOf(config) : readKey(values["public-key"], "--public-key");
  return verifyStore({ connectionString: config.store, schema: config.schema }, { publicKey });
}

async function runService(args: string[], io: Io): Promise<number> {
  const { values, positionals } = options(args, {
    "log-level": { type: "string", default: "info" },
    config: { type: "string", short: "c" },
  });
  noPositionals(positionals);
  const logger = pino({ level: values["log-level"] });
  const service = createAuditService(auditConfig(values.config), logger);
  await service.start();
  io.err.write("agentgate audit: ingesting audit events; SIGTERM or SIGINT stops\n");
  await new Promise<void>((resolve) => {
    process.once("SIGTERM", resolve);
    process.once("SIGINT", resolve);
  });
  await service.stop();
  return 0;
}

async function runRebuild(args: string[], io: Io): Promise<number> {
  const { values, positionals } = options(args, { config: { type: "string", short: "c" } });
  noPositionals(positionals);
  const config = auditConfig(values.config);
  const store = createPostgresEventStore({ connectionString: config.store, schema: config.schema });
  const projector = createProjector({
    connectionString: config.readStore ?? config.store,
    schema: config.readSchema,
    eventStore: store,
  });
  try {
    const position = await projector.rebuild();
    io.out.write(`read models in ${config.readSchema} rebuilt from the event store up to position ${position}\n`);
    return 0;
  } finally {
    await projector.stop();
    await store.close();
  }
}

function publicKeyOf(config: AuditConfig): PublicKeyInput | undefined {
  return config.publicKey === undefined ? undefined : readKey(config.publicKey, "audit.publicKey");
}

function readKey(file: string, what: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (error) {
    throw new UsageError(`${what}: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? error}`);
  }
}

function noPositionals(positionals: string[]): void {
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
}
