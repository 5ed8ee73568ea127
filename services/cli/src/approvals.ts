import { parseArgs } from "node:util";
import { createApprovalService } from "@agentgate/approval";
import { ConfigError, interpolate, readYamlFile } from "@agentgate/config";
import { type Approval, ApprovalService, ApprovalState } from "@agentgate/events";
import { createPostgresEventStore } from "@agentgate/eventstore";
import { createClient, GrpcError } from "@agentgate/grpc";
import { createTokenVerifier } from "@agentgate/identity";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Metadata } from "@grpc/grpc-js";
import { pino } from "pino";
import { z } from "zod";
import { type Io, options, STDIO } from "./sessions.ts";
import { closeOnSignal } from "./signals.ts";
import { UsageError } from "./usage.ts";

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, "expected host:port, e.g. 127.0.0.1:7071");

/** The `approval:` section of agentgate.yaml. */
const approvalSectionSchema = z.strictObject({
  listen: hostPort.default("127.0.0.1:7071"),
  /** The event store (the audit's), as a role that may INSERT and SELECT. */
  store: z.string().min(1),
  schema: z.string().min(1).default("eventstore"),
  /** How long a request lives when the proxy does not say, in seconds. */
  defaultTimeoutSeconds: z.number().int().min(1).default(300),
  /** OAuth client ids that may decide on behalf of others (the Slack bot's). */
  delegates: z.array(z.string().min(1)).default([]),
  /** Groups that approve and revoke grants (JIT access); without them grants cannot be requested. */
  grantApprovers: z.array(z.string().min(1)).default([]),
  /** Longest grant, in seconds (default 8 hours). */
  maxGrantSeconds: z
    .number()
    .int()
    .min(1)
    .default(8 * 3600),
});

const identitySchema = z.object({
  issuer: z.url(),
  audience: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]),
  groupsClaim: z.string().min(1).default("groups"),
});

function loadSections(file: string) {
  const document = (readYamlFile(file) ?? {}) as Record<string, unknown>;
  const parse = <T>(key: string, schema: z.ZodType<T>, optional: boolean): T | undefined => {
    const value = document[key];
    if (value === undefined || value === null) {
      if (optional) return undefined;
      throw new ConfigError(key, "missing");
    }
    const result = schema.safeParse(interpolate(value, process.env, [key]));
    if (!result.success) {
      const issue = result.error.issues[0]!;
      throw new ConfigError([key, ...issue.path.map(String)].join("."), issue.message);
    }
    return result.data;
  };
  const log = (document.log as { level?: string } | undefined)?.level ?? "info";
  return {
    approval: parse("approval", approvalSectionSchema, true),
    identity: parse("identity", identitySchema, true),
    log,
  };
}

/** `agentgate approval run`: the approval service from the config's `approval:` and `identity:` sections. */
export async function runApprovalService(args: string[]): Promise<number> {
  const [subcommand, ...rest] = args;
  if (subcommand !== "run") throw new UsageError("usage: agentgate approval run --config FILE");
  const { values } = parseArgs({ args: rest, options: { config: { type: "string", short: "c" } }, strict: true });
  const file = values.config ?? process.env.AGENTGATE_CONFIG;
  if (file === undefined) throw new UsageError("no config file: pass --config FILE or set AGENTGATE_CONFIG");
  const { approval, identity, log } = loadSections(file);
  if (approval === undefined) throw new ConfigError("approval", "missing: the approval service is configured there");
  const logger = pino({ level: log });
  if (identity === undefined)
    logger.warn("no identity section: approvers cannot sign in, Approve and Deny are refused");
  const verifier = identity && (await createTokenVerifier({ ...identity, allowInsecureLoopbackIssuer: true }));
  const store = createPostgresEventStore({ connectionString: approval.store, schema: approval.schema });
  const service = createApprovalService({
    store,
    listen: approval.listen,
    verifier,
    logger,
    defaultTimeoutSeconds: approval.defaultTimeoutSeconds,
    delegates: approval.delegates,
    grantApprovers: approval.grantApprovers,
    maxGrantSeconds: approval.maxGrantSeconds,
  });
  await service.listen();
  await closeOnSignal(() => service.close());
  await store.close();
  return 0;
}

const USAGE = `usage: agentgate approvals <list | show ID | approve ID | deny ID --reason TEXT> [options]

  list [--all]        pending requests (--all: every request the service knows)
  show ID             one request: statement, parameters, estimate, decisions
  approve ID          approve as the principal of --token (or AGENTGATE_TOKEN)
  deny ID --reason R  deny, saying why (the requester is told)
options:
  --address HOST:PORT the approval service (default: the config's approval.listen, or AGENTGATE_APPROVAL_ADDRESS)
  --token TOKEN       the approver's OIDC access token (default: AGENTGATE_TOKEN)
  --config FILE       agentgate.yaml (default: AGENTGATE_CONFIG)
`;

/**
 * The approval service named by --address, AGENTGATE_APPROVAL_ADDRESS or the config's approval.listen, and the
 * caller's bearer token (--token or AGENTGATE_TOKEN) for the calls that act as someone.
 */
function connect(values: { address?: string; token?: string; config?: string }) {
  const file = values.config ?? process.env.AGENTGATE_CONFIG;
  const address =
    values.address ??
    process.env.AGENTGATE_APPROVAL_ADDRESS ??
    (file === undefined ? undefined : loadSections(file).approval?.listen);
  if (address === undefined) throw new UsageError("no approval service: pass --address HOST:PORT or --config FILE");
  const client = createClient(ApprovalService, address, { deadlineMs: 10_000 });
  const credentials = () => {
    const token = values.token ?? process.env.AGENTGATE_TOKEN;
    if (token === undefined || token === "") throw new UsageError("no token: pass --token or set AGENTGATE_TOKEN");
    const metadata = new Metadata();
    metadata.set("authorization", `Bearer ${token}`);
    return { metadata };
  };
  return { client, credentials };
}

/** `agentgate approvals ...`: the approvers' CLI. */
export async function runApprovals(args: string[], io: Io = STDIO): Promise<number> {
  const [subcommand, ...rest] = args;
  if (subcommand === undefined || ["help", "--help", "-h"].includes(subcommand)) {
    io.out.write(USAGE);
    return subcommand === undefined ? 2 : 0;
  }
  const { values, positionals } = options(rest, {
    all: { type: "boolean" },
    reason: { type: "string" },
    address: { type: "string" },
    token: { type: "string" },
    config: { type: "string", short: "c" },
  });
  const { client, credentials } = connect(values);
  const id = positionals[0];
  const needId = () => {
    if (id === undefined) throw new UsageError(`${subcommand} needs an approval id`);
    return id;
  };
  try {
    switch (subcommand) {
      case "list": {
        const states = values.all
          ? Object.values(ApprovalState).filter((s): s is ApprovalState => typeof s === "number" && s !== 0)
          : [];
        const { approvals } = await client.list({ states });
        io.out.write(renderList(approvals));
        return 0;
      }
      case "show":
        io.out.write(renderOne(await client.get({ id: needId() })));
        return 0;
      case "approve": {
        const approval = await client.approve({ id: needId(), via: "cli" }, credentials());
        io.out.write(`${approvalLine(approval)}\n`);
        return 0;
      }
      case "deny": {
        if (values.reason === undefined || values.reason.trim() === "")
          throw new UsageError("deny needs --reason TEXT");
        const approval = await client.deny({ id: needId(), reason: values.reason, via: "cli" }, credentials());
        io.out.write(`${approvalLine(approval)}\n`);
        return 0;
      }
      default:
        throw new UsageError(`unknown subcommand "${subcommand}"\n${USAGE}`);
    }
  } catch (error) {
    if (error instanceof GrpcError) {
      io.err.write(`agentgate approvals ${subcommand}: ${error.message}\n`);
      return 1;
    }
    throw error;
  } finally {
    client.close();
  }
}

const STATE_NAMES: Record<number, string> = {
  [ApprovalState.PENDING]: "pending",
  [ApprovalState.APPROVED]: "approved",
  [ApprovalState.DENIED]: "denied",
  [ApprovalState.EXPIRED]: "expired",
  [ApprovalState.WITHDRAWN]: "withdrawn",
  [ApprovalState.CONSUMED]: "used",
};

/** A statement on one line for a terminal: control characters shown escaped, long text cut. */
export function oneLine(text: string, max = 100): string {
  const flat = JSON.stringify(text).slice(1, -1);
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

function approvalLine(a: Approval): string {
  const approvals = a.decisions.filter((d) => d.approved).length;
  return `${a.id} ${STATE_NAMES[a.state] ?? "unknown"} (${approvals}/${a.approvalsRequired} approvals)`;
}

function renderList(approvals: Approval[]): string {
  if (approvals.length === 0) return "no approval requests\n";
  const rows = approvals.map((a) => [
    a.id,
    STATE_NAMES[a.state] ?? "",
    a.requester?.subject ?? "",
    a.target,
    a.estimatedRows < 0n ? "?" : String(a.estimatedRows),
    a.requestedAt ? timestampDate(a.requestedAt).toISOString() : "",
    oneLine(a.sql, 60),
  ]);
  const header = ["id", "state", "requester", "target", "rows", "requested", "statement"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return `${[header, ...rows]
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join("  ")
        .trimEnd(),
    )
    .join("\n")}\n`;
}

function renderOne(a: Approval): string {
  const lines = [
    `approval   ${a.id}`,
    `state      ${STATE_NAMES[a.state] ?? "unknown"} (${a.decisions.filter((d) => d.approved).length}/${a.approvalsRequired} approvals; approvers: ${a.approverGroups.join(", ")})`,
    `requester  ${a.requester?.subject ?? ""} (${(a.requester?.groups ?? []).join(", ")})`,
    `target     ${a.target}  session ${a.sessionId}`,
    `rule       ${a.rule}: ${oneLine(a.reason, 200)}`,
    `statement  ${oneLine(a.sql, 2000)}`,
    ...(a.parameters.length > 0 ? [`parameters ${a.parameters.map((p) => oneLine(p, 200)).join(", ")}`] : []),
    `estimate   ${a.estimatedRows < 0n ? "not estimated" : `${a.estimatedRows} rows`}${a.objects.length > 0 ? `; changes ${a.objects.join(", ")}` : ""}`,
    `requested  ${a.requestedAt ? timestampDate(a.requestedAt).toISOString() : ""}; expires ${a.expiresAt ? timestampDate(a.expiresAt).toISOString() : ""}`,
    ...a.decisions.map(
      (d) =>
        `${d.approved ? "approved" : "denied  "}   by ${d.approver?.subject ?? ""} via ${d.via} at ${d.at ? timestampDate(d.at).toISOString() : ""}${d.approved ? "" : `: ${oneLine(d.reason, 500)}`}`,
    ),
  ];
  return `${lines.join("\n")}\n`;
}

const GRANTS_USAGE = `usage: agentgate grants <request | list | revoke ID --reason TEXT> [options]

  request --target T --classes C[,C] --minutes N --reason TEXT
                      ask for time-boxed access as the principal of --token; approvers decide it with
                      agentgate approvals approve ID, and the policy allows those classes on T until it expires
  list                the grants in force
  revoke ID --reason  end a grant now (grant approvers only)
options: --address HOST:PORT, --token TOKEN, --config FILE (as for agentgate approvals)
`;

/** \`agentgate grants ...\`: JIT access. */
export async function runGrants(args: string[], io: Io = STDIO): Promise<number> {
  const [subcommand, ...rest] = args;
  if (subcommand === undefined || ["help", "--help", "-h"].includes(subcommand)) {
    io.out.write(GRANTS_USAGE);
    return subcommand === undefined ? 2 : 0;
  }
  const { values, positionals } = options(rest, {
    target: { type: "string" },
    classes: { type: "string" },
    minutes: { type: "string" },
    reason: { type: "string" },
    address: { type: "string" },
    token: { type: "string" },
    config: { type: "string", short: "c" },
  });
  const { client, credentials } = connect(values);
  try {
    switch (subcommand) {
      case "request": {
        const minutes = Number(values.minutes);
        if (!(Number.isInteger(minutes) && minutes > 0)) throw new UsageError("--minutes must be a positive integer");
        const classes = String(values.classes ?? "")
          .split(",")
          .map((c) => c.trim())
          .filter((c) => c !== "");
        if (values.target === undefined || classes.length === 0)
          throw new UsageError("request needs --target and --classes");
        const approval = await client.requestGrant(
          { target: String(values.target), classes, seconds: minutes * 60, reason: String(values.reason ?? "") },
          credentials(),
        );
        io.out.write(`grant requested: approval ${approval.id} (approvers: ${approval.approverGroups.join(", ")})\n`);
        return 0;
      }
      case "list": {
        const { grants } = await client.listGrants({});
        if (grants.length === 0) io.out.write("no grants in force\n");
        for (const g of grants) {
          const until = g.expiresAt ? timestampDate(g.expiresAt).toISOString() : "";
          io.out.write(
            `${g.id}  ${oneLine(g.principal?.subject ?? "")}  ${oneLine(g.target)}  ${g.classes.join(",")}  until ${until}\n`,
          );
        }
        return 0;
      }
      case "revoke": {
        const id = positionals[0];
        if (id === undefined) throw new UsageError("revoke needs a grant id");
        await client.revokeGrant({ id, reason: String(values.reason ?? "") }, credentials());
        io.out.write(`grant ${id} revoked\n`);
        return 0;
      }
      default:
        throw new UsageError(`unknown subcommand "${subcommand}"\n${GRANTS_USAGE}`);
    }
  } catch (error) {
    if (error instanceof GrpcError) {
      io.err.write(`agentgate grants ${subcommand}: ${error.message}\n`);
      return 1;
    }
    throw error;
  } finally {
    client.close();
  }
}
