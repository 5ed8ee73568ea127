import { ConfigError } from "@agentgate/config";
import { UsageError } from "./usage.ts";

const USAGE = `usage: agentgate <command> [options]

commands:
  approval run        run the approval service from the config's approval: section (--config FILE)
  approvals           approvers' CLI: list, show ID, approve ID, deny ID --reason TEXT (--help)
  grants              JIT access: grants request --target T --classes C --minutes N, list, revoke ID (--help)
  audit               the audit record: export, verify (a bundle offline, or --store), run, rebuild (--help)
  dev                 start a demo: a throwaway PostgreSQL with sample data behind a gateway
  policy              run the policy service from the config's policy: section (--config FILE or AGENTGATE_CONFIG)
  proxy               run a proxy worker (--config FILE or AGENTGATE_CONFIG)
  replay              show a session as a timeline of its statements (SESSION_ID; --help)
  sessions            list sessions: sessions list [--principal SUB] [--target T] [--since WHEN] (--help)
  slackbot run        run the Slack bot for approvers from the config's slackbot: section (--config FILE)
  token               get an access token by client credentials (--issuer URL --client-id ID; --help)
`;

type Command = (args: string[]) => Promise<number>;

// Each command's module is loaded only when it runs: a proxy worker does not carry the Slack bot, the audit
// service or the demo in its memory.
const commands: Record<string, () => Promise<Command>> = {
  approval: async () => (await import("./approvals.ts")).runApprovalService,
  approvals: async () => {
    const { runApprovals } = await import("./approvals.ts");
    return (args) => runApprovals(args);
  },
  audit: async () => (await import("./audit.ts")).runAudit,
  grants: async () => {
    const { runGrants } = await import("./approvals.ts");
    return (args) => runGrants(args);
  },
  dev: async () => (await import("./dev.ts")).runDev,
  policy: async () => (await import("./policy.ts")).runPolicy,
  proxy: async () => (await import("./proxy.ts")).runProxy,
  replay: async () => (await import("./replay.ts")).runReplay,
  sessions: async () => (await import("./sessions.ts")).runSessions,
  slackbot: async () => (await import("./slackbot.ts")).runSlackbot,
  token: async () => (await import("./token.ts")).runToken,
};

/** Runs one subcommand; returns the process exit code. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(USAGE);
    return name === undefined ? 2 : 0;
  }
  const load = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (load === undefined) {
    process.stderr.write(`agentgate: unknown command "${name}"\n${USAGE}`);
    return 2;
  }
  try {
    const command = await load();
    return await command(args);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`agentgate ${name}: invalid configuration: ${error.message}\n`);
      return 78; // EX_CONFIG
    }
    if (error instanceof UsageError) {
      process.stderr.write(`agentgate ${name}: ${error.message}\n`);
      return 2;
    }
    // Anything else (a server that cannot be reached at start, say): one line, exit 1; the stack on request.
    if (process.env.AGENTGATE_DEBUG) throw error;
    const message = error instanceof Error ? error.message || error.name : String(error);
    const code = (error as { code?: unknown }).code;
    process.stderr.write(
      `agentgate ${name}: ${message}${typeof code === "string" && !message.includes(code) ? ` (${code})` : ""}\n`,
    );
    return 1;
  }
}
