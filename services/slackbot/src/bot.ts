import { type Approval, ApprovalService, ApprovalState, type Principal } from "@agentgate/events";
import { Code, createClient, GrpcError } from "@agentgate/grpc";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Metadata } from "@grpc/grpc-js";
import { App, LogLevel } from "@slack/bolt";
import type { Logger } from "pino";
import { SignedReceiver } from "./receiver.ts";

export interface SlackUser {
  /** The identity this Slack user decides as (the OIDC subject its approvals are recorded under). */
  subject: string;
  groups: string[];
}

export interface SlackBotOptions {
  /** host:port of the approval service. */
  approvalAddress: string;
  /** The bot's own OIDC access token for the approval service (a delegate client); called before each call. */
  credentials: () => Promise<string>;
  /** Slack's signing secret: every interaction must be signed with it. */
  signingSecret: string;
  /** The bot token (xoxb-...). */
  botToken: string;
  /** Slack's Web API base URL; default https://slack.com/api/. */
  apiUrl?: string;
  /** Where requests are posted: a channel per rule name, else `channel`. */
  channel: string;
  channels?: Record<string, string>;
  /** Verified Slack user ids mapped to identities; a user not here cannot decide. */
  users: Record<string, SlackUser>;
  /** The issuer recorded for mapped identities (the one agents' tokens come from, so self-approval is caught). */
  issuer: string;
  logger: Logger;
}

export interface SlackBot {
  /** Starts the HTTP endpoint for interactions and follows approvals; resolves with the bound port. */
  start(port: number, host?: string): Promise<{ port: number }>;
  stop(): Promise<void>;
}

const STATE_TEXT: Record<number, string> = {
  [ApprovalState.PENDING]: "Waiting for approval",
  [ApprovalState.APPROVED]: "Approved",
  [ApprovalState.DENIED]: "Denied",
  [ApprovalState.EXPIRED]: "Expired (nobody decided in time)",
  [ApprovalState.WITHDRAWN]: "Withdrawn (the agent went away)",
  [ApprovalState.CONSUMED]: "Approved and run",
};

/**
 * The Slack bot: a gRPC client of the approval service that posts each new request to the rule's channel (with
 * Approve and Deny buttons; Deny asks for a reason), and updates the message when the request is decided, wherever
 * it was decided and whichever bot instance posted it (the message is recorded on the approval with Announce). Clicks
 * come through SignedReceiver (signature and replay checks) and are decided on behalf of the mapped identity.
 * Everything a request contains is shown as literal text: a statement cannot mention, link or format.
 */
export function createSlackBot(options: SlackBotOptions): SlackBot {
  const { logger } = options;
  const approvals = createClient(ApprovalService, options.approvalAddress, { deadlineMs: 10_000 });
  const receiver = new SignedReceiver({ signingSecret: options.signingSecret, logger });
  const app = new App({
    token: options.botToken,
    receiver,
    logLevel: LogLevel.ERROR,
    clientOptions: { slackApiUrl: options.apiUrl ?? "https://slack.com/api/" },
  });
  const stopping = new AbortController();
  /** What each message last showed, so an unchanged approval is not re-rendered. */
  const rendered = new Map<string, string>();
  let following: Promise<void> | undefined;

  const metadata = async () => {
    const m = new Metadata();
    m.set("authorization", `Bearer ${await options.credentials()}`);
    return m;
  };

  const principalOf = (userId: string): Principal | undefined => {
    const user = Object.hasOwn(options.users, userId) ? options.users[userId] : undefined;
    return (
      user && {
        $typeName: "agentgate.v1.Principal",
        subject: user.subject,
        groups: user.groups,
        issuer: options.issuer,
        clientId: "",
      }
    );
  };

  const tell = async (channel: string, user: string, text: string) => {
    await app.client.chat.postEphemeral({ channel, user, text: escapeMrkdwn(text) }).catch((error: unknown) => {
      logger.warn({ err: error }, "could not tell the user");
    });
  };

  const decide = async (
    kind: "approve" | "deny",
    id: string,
    userId: string,
    channel: string,
    reason = "",
  ): Promise<void> => {
    const onBehalfOf = principalOf(userId);
    if (onBehalfOf === undefined) {
      await tell(channel, userId, "You are not mapped to an identity that may approve requests.");
      return;
    }
    try {
      await approvals[kind]({ id, reason, via: "slack", onBehalfOf }, { metadata: await metadata() });
      logger.info({ approval: id, approver: onBehalfOf.subject, kind }, "decided from slack");
    } catch (error) {
      if (!(error instanceof GrpcError)) throw error;
      await tell(channel, userId, `Not ${kind === "approve" ? "approved" : "denied"}: ${error.message}`);
    }
  };

  app.action("approve", async ({ ack, body, action }) => {
    await ack();
    const id = (action as { value?: string }).value ?? "";
    const channel = (body as { channel?: { id?: string } }).channel?.id ?? options.channel;
    await decide("approve", id, body.user.id, channel);
  });

  app.action("deny", async ({ ack, body, action, client }) => {
    await ack();
    const id = (action as { value?: string }).value ?? "";
    const channel = (body as { channel?: { id?: string } }).channel?.id ?? options.channel;
    await client.views.open({
      trigger_id: (body as { trigger_id: string }).trigger_id,
      view: {
        type: "modal",
        callback_id: "deny_reason",
        private_metadata: JSON.stringify({ id, channel }),
        title: { type: "plain_text", text: "Deny the statement" },
        submit: { type: "plain_text", text: "Deny" },
        blocks: [
          {
            type: "input",
            block_id: "reason",
            label: { type: "plain_text", text: "Why? The agent is told." },
            element: { type: "plain_text_input", action_id: "reason", multiline: true },
          },
        ],
      },
    });
  });

  app.view("deny_reason", async ({ ack, view, body }) => {
    const reason = view.state.values.reason?.reason?.value?.trim() ?? "";
    if (reason === "") {
      await ack({ response_action: "errors", errors: { reason: "A reason is required." } });
      return;
    }
    await ack();
    const { id, channel } = JSON.parse(view.private_metadata) as { id: string; channel: string };
    await decide("deny", id, body.user.id, channel, reason);
  });

  /** Posts a new request once (a duplicate from another instance is deleted) and keeps its message current. */
  const show = async (approval: Approval) => {
    const channel = options.channels?.[approval.rule] ?? options.channel;
    const blocks = messageBlocks(approval);
    const text = escapeMrkdwn(
      `${STATE_TEXT[approval.state] ?? ""}: ${approval.requester?.subject ?? ""} on ${approval.target}`,
    );
    const notice = approval.notices.find((n) => n.channel === channel);
    if (notice === undefined) {
      if (approval.state !== ApprovalState.PENDING) return; // decided before anyone posted it
      const posted = await app.client.chat.postMessage({ channel, text, blocks });
      const ts = posted.ts ?? "";
      try {
        await approvals.announce({ id: approval.id, channel, ts }, { metadata: await metadata() });
        rendered.set(`${channel}/${ts}`, JSON.stringify(blocks));
      } catch (error) {
        if (error instanceof GrpcError && error.code === Code.ALREADY_EXISTS) {
          await app.client.chat.delete({ channel, ts }); // another instance was first
          return;
        }
        throw error;
      }
      return;
    }
    const key = `${notice.channel}/${notice.ts}`;
    const shown = JSON.stringify(blocks);
    if (rendered.get(key) === shown) return;
    await app.client.chat.update({ channel: notice.channel, ts: notice.ts, text, blocks });
    // A decided request's message is final: forget it (a later event for it costs one more update at most).
    if (approval.state === ApprovalState.PENDING) rendered.set(key, shown);
    else rendered.delete(key);
  };

  const follow = async () => {
    while (!stopping.signal.aborted) {
      try {
        for await (const approval of approvals.watch({ id: "" }, { signal: stopping.signal })) {
          await show(approval).catch((error: unknown) =>
            logger.warn({ err: error, approval: approval.id }, "could not show the request in slack"),
          );
        }
      } catch (error) {
        if (stopping.signal.aborted) return;
        logger.warn({ err: error }, "approval watch interrupted; watching again");
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  };

  return {
    async start(port, host = "127.0.0.1") {
      // App.start hands its arguments to the receiver (SignedReceiver.start(port, host)).
      const start = app.start.bind(app) as unknown as (port: number, host: string) => Promise<{ port: number }>;
      const address = await start(port, host);
      following = follow();
      return { port: address.port };
    },
    async stop() {
      stopping.abort();
      await following;
      await app.stop();
      approvals.close();
    },
  };
}

/** Slack mrkdwn's three control characters, escaped: text shows as written, with no mention, link or channel ping. */
export function escapeMrkdwn(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

const plain = (text: string) => ({
  type: "plain_text" as const,
  text: text === "" ? " " : text.slice(0, 2000),
  emoji: false,
});

/**
 * The message for a request. Everything that comes from the request is plain text or a preformatted rich-text
 * element, which Slack never parses for markup or mentions.
 */
export function messageBlocks(a: Approval) {
  const approvals = a.decisions.filter((d) => d.approved).length;
  const decisions = a.decisions.map((d) =>
    plain(
      `${d.approved ? "Approved" : "Denied"} by ${d.approver?.subject ?? ""}${d.at ? ` at ${timestampDate(d.at).toISOString()}` : ""}${d.approved ? "" : `: ${d.reason}`}`,
    ),
  );
  const blocks: unknown[] = [
    { type: "header", text: plain(`${STATE_TEXT[a.state] ?? ""} (${approvals}/${a.approvalsRequired})`) },
    {
      type: "section",
      fields: [
        plain(`Agent: ${a.requester?.subject ?? ""} (${(a.requester?.groups ?? []).join(", ")})`),
        plain(`Target: ${a.target}`),
        plain(`Rule: ${a.rule}`),
        plain(`Estimate: ${a.estimatedRows < 0n ? "not estimated" : `${a.estimatedRows} rows`}`),
      ],
    },
    {
      type: "rich_text",
      elements: [
        { type: "rich_text_preformatted", elements: [{ type: "text", text: a.sql.slice(0, 3000) || " " }] },
        ...(a.parameters.length > 0
          ? [
              {
                type: "rich_text_preformatted",
                elements: [{ type: "text", text: `parameters: ${a.parameters.join(", ")}`.slice(0, 2000) }],
              },
            ]
          : []),
      ],
    },
    ...(decisions.length > 0 ? [{ type: "context", elements: decisions }] : []),
  ];
  if (a.state === ApprovalState.PENDING) {
    blocks.push({
      type: "actions",
      elements: [
        { type: "button", action_id: "approve", style: "primary", text: plain("Approve"), value: a.id },
        { type: "button", action_id: "deny", style: "danger", text: plain("Deny"), value: a.id },
      ],
    });
  }
  return blocks as never[];
}
