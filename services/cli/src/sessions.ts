import { parseArgs } from "node:util";
import {
  type AuditConfig,
  createReadModel,
  loadAuditConfig,
  parseTimeOrAgo,
  type ReadModel,
  renderSessions,
} from "@agentgate/audit";
import { UsageError } from "./usage.ts";

/** Where a command writes; tests pass their own. */
export interface Io {
  out: { write(text: string): unknown };
  err: { write(text: string): unknown };
}

export const STDIO: Io = { out: process.stdout, err: process.stderr };

const USAGE = `usage: agentgate sessions list [--principal SUB] [--target T] [--since WHEN] [--limit N] [--config FILE]

Lists sessions from the audit read models, newest first.
  --principal SUB   only sessions of this principal (the token's subject)
  --target T        only sessions to this target
  --since WHEN      only sessions open at some time since WHEN: ISO 8601, or a duration back from now (30m, 1h, 2d)
  --limit N         at most N sessions (default 100)
  --config FILE     agentgate.yaml with an audit section (default: AGENTGATE_CONFIG)
`;

/** `agentgate sessions list`. */
export async function runSessions(args: string[], io: Io = STDIO): Promise<number> {
  const [subcommand, ...rest] = args;
  if (subcommand === undefined || ["help", "--help", "-h"].includes(subcommand)) {
    io.out.write(USAGE);
    return subcommand === undefined ? 2 : 0;
  }
  if (subcommand !== "list") throw new UsageError(`unknown subcommand "${subcommand}" (try: agentgate sessions list)`);
  const { values, positionals } = options(rest, {
    principal: { type: "string" },
    target: { type: "string" },
    since: { type: "string" },
    limit: { type: "string" },
    config: { type: "string", short: "c" },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  const since = values.since === undefined ? undefined : timeOption("--since", values.since);
  const limit = values.limit === undefined ? undefined : Number(values.limit);
  if (limit !== undefined && !(Number.isInteger(limit) && limit > 0))
    throw new UsageError("--limit must be a positive integer");
  return withReadModel(auditConfig(values.config), io, "sessions", async (read) => {
    io.out.write(
      renderSessions(await read.listSessions({ principal: values.principal, target: values.target, since, limit })),
    );
    return 0;
  });
}

/** parseArgs with strict options; a wrong command line is a UsageError. */
export function options<T extends NonNullable<Parameters<typeof parseArgs>[0]>["options"]>(args: string[], spec: T) {
  try {
    return parseArgs({ args, options: spec, strict: true, allowPositionals: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** An ISO 8601 time or a duration back from now, for a command line option. */
export function timeOption(name: string, text: string): Date {
  const date = parseTimeOrAgo(text);
  if (date === undefined) throw new UsageError(`${name} must be an ISO 8601 time or a duration such as 30m, 1h, 2d`);
  return date;
}

/** The audit section of --config FILE or AGENTGATE_CONFIG. */
export function auditConfig(file: string | undefined): AuditConfig {
  const path = file ?? process.env.AGENTGATE_CONFIG;
  if (path === undefined || path === "")
    throw new UsageError("no config file: pass --config FILE or set AGENTGATE_CONFIG");
  return loadAuditConfig(path);
}

/** Runs `work` on the configured read models; a database that cannot answer is one line on stderr, exit 1. */
export async function withReadModel(
  config: AuditConfig,
  io: Io,
  command: string,
  work: (read: ReadModel) => Promise<number>,
): Promise<number> {
  const read = createReadModel({ connectionString: config.readStore ?? config.store, schema: config.readSchema });
  try {
    return await work(read);
  } catch (error) {
    io.err.write(`agentgate ${command}: cannot read the audit read models: ${(error as Error).message}\n`);
    return 1;
  } finally {
    await read.close();
  }
}
