import { parseArgs } from "node:util";
import { ConfigError, interpolate, readYamlFile } from "@agentgate/config";
import { createSlackBot } from "@agentgate/slackbot";
import { pino } from "pino";
import { z } from "zod";
import { closeOnSignal } from "./signals.ts";
import { clientCredentialsToken } from "./token.ts";
import { UsageError } from "./usage.ts";

const hostPort = z.string().regex(/^(\[[0-9a-fA-F:.]+\]|[^:\s]+):\d{1,5}$/, "expected host:port");

/** The `slackbot:` section of agentgate.yaml. */
const slackbotSchema = z.strictObject({
  /** Where Slack's interaction requests arrive (behind your HTTPS ingress). */
  listen: hostPort.default("127.0.0.1:3000"),
  /** host:port of the approval service. */
  approval: hostPort,
  signingSecret: z.string().min(16),
  botToken: z.string().startsWith("xoxb-", "expected a bot token (xoxb-...)"),
  /** Slack's Web API base URL (tests point it elsewhere). */
  apiUrl: z.url().optional(),
  /** Default channel id for requests, and channel ids by rule name. */
  channel: z.string().min(1),
  channels: z.record(z.string().min(1), z.string().min(1)).optional(),
  /** Slack user id → the identity that user decides as. */
  users: z.record(
    z.string().min(1),
    z.strictObject({ subject: z.string().min(1), groups: z.array(z.string().min(1)) }),
  ),
  /** The bot's own OAuth client (listed in the approval service's `delegates`). */
  oidc: z.strictObject({
    clientId: z.string().min(1),
    clientSecret: z.string().min(1),
    audience: z.string().min(1).optional(),
  }),
});

/** `agentgate slackbot run`: the Slack bot from the config's `slackbot:` and `identity:` sections. */
export async function runSlackbot(args: string[]): Promise<number> {
  const [subcommand, ...rest] = args;
  if (subcommand !== "run") throw new UsageError("usage: agentgate slackbot run --config FILE");
  const { values } = parseArgs({ args: rest, options: { config: { type: "string", short: "c" } }, strict: true });
  const file = values.config ?? process.env.AGENTGATE_CONFIG;
  if (file === undefined) throw new UsageError("no config file: pass --config FILE or set AGENTGATE_CONFIG");
  const document = (readYamlFile(file) ?? {}) as Record<string, unknown>;
  if (document.slackbot === undefined) throw new ConfigError("slackbot", "missing: the Slack bot is configured there");
  const parsed = slackbotSchema.safeParse(interpolate(document.slackbot, process.env, ["slackbot"]));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(["slackbot", ...issue.path.map(String)].join("."), issue.message);
  }
  const issuer = (document.identity as { issuer?: unknown } | undefined)?.issuer;
  if (typeof issuer !== "string") throw new ConfigError("identity.issuer", "missing: the bot's token comes from there");
  const config = parsed.data;
  const logger = pino({ level: (document.log as { level?: string } | undefined)?.level ?? "info" });

  // The bot's token, fetched again a minute before it expires (or every 5 minutes when it does not say).
  let cached: { token: string; until: number } | undefined;
  const credentials = async () => {
    if (cached !== undefined && Date.now() < cached.until) return cached.token;
    const token = await clientCredentialsToken({
      issuer: new URL(issuer),
      clientId: config.oidc.clientId,
      clientSecret: config.oidc.clientSecret,
      audience: config.oidc.audience,
      scope: undefined,
    });
    cached = { token, until: Math.min(expiryOf(token) - 60_000, Date.now() + 5 * 60_000) };
    return token;
  };

  const bot = createSlackBot({
    approvalAddress: config.approval,
    credentials,
    signingSecret: config.signingSecret,
    botToken: config.botToken,
    ...(config.apiUrl === undefined ? {} : { apiUrl: config.apiUrl }),
    channel: config.channel,
    ...(config.channels === undefined ? {} : { channels: config.channels }),
    users: config.users,
    issuer,
    logger,
  });
  const [host, port] = [
    config.listen.slice(0, config.listen.lastIndexOf(":")),
    Number(config.listen.slice(config.listen.lastIndexOf(":") + 1)),
  ];
  const started = await bot.start(port, host);
  logger.info({ port: started.port }, "slack bot listening");
  await closeOnSignal(() => bot.stop());
  return 0;
}

/** A JWT's exp in milliseconds; far in the future for tokens that are not JWTs. */
function expiryOf(token: string): number {
  try {
    const payload = JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")) as {
      exp?: unknown;
    };
    return typeof payload.exp === "number" ? payload.exp * 1000 : Number.POSITIVE_INFINITY;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}
