import { randomUUID } from "node:crypto";
import { type ApprovalSchema, ApprovalService, ApprovalState, type Principal } from "@agentgate/events";
import type { EventStore, RecordedEvent } from "@agentgate/eventstore";
import { addService, bindServer, Code, GrpcError, isLoopback, type ServiceImpl } from "@agentgate/grpc";
import type { TokenVerifier } from "@agentgate/identity";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { Server } from "@grpc/grpc-js";
import { type Logger, pino } from "pino";
import { type ApprovalCommand, approvalDecider, type Requested, type RequestedApproval } from "./approval-decider.ts";
import { fromStored, isApprovalEventType, STREAM_PREFIX, stateOf, streamOf, toStored, viewOf } from "./codec.ts";
import { createCommandHandler } from "./command-handler.ts";
import { principalKey } from "./decider.ts";
import { createGrants } from "./grants.ts";
import { createCallers, refusalsAsStatus } from "./rpc.ts";

export interface ApprovalServiceOptions {
  /** The event store (the audit's): approvals are streams `approval-<id>` in it. */
  store: EventStore;
  /** host:port; port 0 picks a free one. */
  listen: string;
  /** Verifies approvers' bearer tokens; without it Approve and Deny are refused (UNAUTHENTICATED). */
  verifier: TokenVerifier | undefined;
  logger?: Logger;
  /** How often pending requests past their expiry are expired (a proxy that died cannot); default 5000 ms. */
  sweepIntervalMs?: number;
  /** How long a proxy's request lives when it does not say; default 5 minutes. */
  defaultTimeoutSeconds?: number;
  /** Name of this instance in events; default a random id. */
  instanceId?: string;
  /**
   * OAuth client ids (the token's client_id) that may decide on behalf of another principal: the Slack bot, which
   * maps a verified Slack user to an identity. Default none.
   */
  delegates?: readonly string[];
  /** Groups whose members approve (and revoke) grant requests; without it grants cannot be requested. */
  grantApprovers?: readonly string[];
  /** Longest grant a principal may ask for; default 8 hours. */
  maxGrantSeconds?: number;
}

export interface ApprovalServer {
  listen(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
}

type View = MessageInitShape<typeof ApprovalSchema>;

/** An approval as the projection holds it. */
interface Entry {
  state: RequestedApproval;
  position: bigint;
}

/**
 * The approval service: an event-sourced aggregate per approval and per grant (deciders, appended with optimistic
 * concurrency), projections of every approval and grant kept live from the store's subscription (so any instance
 * sees what any other appended), and the gRPC API proxies, the CLI and the Slack bot use.
 */
export function createApprovalService(options: ApprovalServiceOptions): ApprovalServer {
  const logger = (options.logger ?? pino()).child({ service: "approval" });
  const store = options.store;
  const instance = options.instanceId ?? `approval-${randomUUID().slice(0, 8)}`;
  const shutdown = new AbortController();
  const approvals = new Map<string, Entry>();
  const watchers = new Set<(id: string) => void>();
  const callers = createCallers(options.verifier, options.delegates);
  const grants = createGrants({ store, callers, grantApprovers: options.grantApprovers ?? [], instance, logger });
  const handler = createCommandHandler(store, approvalDecider, (recorded) => fromStored(recorded)?.event);
  let head = 0n;
  let server: Server | undefined;
  let following: Promise<void> | undefined;
  let sweeper: NodeJS.Timeout | undefined;

  const apply = (recorded: RecordedEvent) => {
    if (recorded.position > head) head = recorded.position;
    if (grants.apply(recorded)) return;
    if (!recorded.stream.startsWith(STREAM_PREFIX) || !isApprovalEventType(recorded.type)) return;
    const decoded = fromStored(recorded);
    if (decoded === undefined) return;
    const previous = approvals.get(decoded.approvalId)?.state ?? approvalDecider.initialState();
    const state = approvalDecider.evolve(previous, decoded.event);
    if (state.status === "none") return;
    approvals.set(decoded.approvalId, { state, position: recorded.position });
    for (const wake of watchers) wake(decoded.approvalId);
  };

  /** Loads an approval from its stream (authoritative, unlike the projection, which may lag another instance). */
  const load = async (id: string): Promise<Entry> => {
    const { state, position } = await handler.load(streamOf(id));
    if (state.status === "none") throw new GrpcError(Code.NOT_FOUND, "no such approval");
    return { state, position };
  };

  /** Decides a command against the stream as stored and appends the result, retrying when another instance won. */
  const execute = async (
    id: string,
    command: ApprovalCommand,
    actor: Principal | undefined,
    workerId = instance,
  ): Promise<View> => {
    const { state, position } = await refusalsAsStatus(() =>
      handler.handle(streamOf(id), command, (event, before) =>
        toStored(event, {
          approvalId: id,
          request: before.status === "none" ? undefined : before.request,
          actor,
          workerId,
        }),
      ),
    );
    if (state.status === "none") throw new GrpcError(Code.NOT_FOUND, "no such approval"); // decide refuses first
    return viewOf(state, position);
  };

  /** Issues the grant of an approved grant request (once). */
  const issueGrant = async (id: string): Promise<void> => grants.issue(id, (await handler.load(streamOf(id))).state);

  const view = (id: string): View | undefined => {
    const entry = approvals.get(id);
    return entry && viewOf(entry.state, entry.position);
  };

  /** Records a new request for `seconds`; its id is chosen here. */
  const newRequest = async (
    r: Omit<Requested, "type" | "approvalId" | "at" | "expiresAt">,
    seconds: number,
    workerId = instance,
  ): Promise<View> => {
    const approvalId = randomUUID();
    const at = new Date();
    const expiresAt = new Date(at.getTime() + seconds * 1000);
    return execute(
      approvalId,
      { type: "request", request: { ...r, approvalId, at, expiresAt } },
      r.requester,
      workerId,
    );
  };

  const handlers: ServiceImpl<typeof ApprovalService> = {
    async request(request) {
      if (request.requester === undefined) throw new GrpcError(Code.INVALID_ARGUMENT, "requester is required");
      if (request.target === "") throw new GrpcError(Code.INVALID_ARGUMENT, "target is required");
      const result = await newRequest(
        {
          requester: request.requester,
          target: request.target,
          sessionId: request.sessionId,
          sql: request.sql,
          parameters: request.parameters,
          rule: request.rule,
          reason: request.reason,
          approverGroups: request.approverGroups,
          approvalsRequired: request.approvalsRequired || 1,
          estimatedRows: request.estimatedRows,
          objects: request.objects,
          fingerprint: request.fingerprint,
          mode: request.mode === "deferred" ? "deferred" : "wait",
          grantClasses: [],
          grantSeconds: 0,
        },
        request.timeoutSeconds || (options.defaultTimeoutSeconds ?? 300),
        request.workerId || instance,
      );
      logger.info({ approval: result.id, target: request.target, rule: request.rule }, "approval requested");
      return result;
    },

    async get({ id }) {
      const entry = approvals.get(id) ?? (await load(id));
      return viewOf(entry.state, entry.position);
    },

    async list({ states }) {
      const wanted = new Set(states.length === 0 ? [ApprovalState.PENDING] : states);
      const out: View[] = [];
      for (const entry of approvals.values()) {
        if (wanted.has(stateOf(entry.state.status))) out.push(viewOf(entry.state, entry.position));
      }
      out.sort((a, b) => Number((a.position ?? 0n) - (b.position ?? 0n)));
      return { approvals: out };
    },

    async approve({ id, via, onBehalfOf }, context) {
      const who = await callers.approver(context, onBehalfOf);
      const result = await execute(id, { type: "approve", approver: who, via: via || "api", at: new Date() }, who);
      logger.info({ approval: id, approver: who.subject, via }, "approval granted by one approver");
      if (result.state === ApprovalState.APPROVED && result.mode === "grant") await issueGrant(id);
      return result;
    },

    async deny({ id, reason, via, onBehalfOf }, context) {
      const who = await callers.approver(context, onBehalfOf);
      const result = await execute(id, { type: "deny", approver: who, reason, via: via || "api", at: new Date() }, who);
      logger.info({ approval: id, approver: who.subject, via }, "approval denied");
      return result;
    },

    async withdraw({ id, reason, workerId }) {
      return execute(id, { type: "withdraw", reason: reason || "withdrawn", at: new Date() }, undefined, workerId);
    },

    async expire({ id, workerId }) {
      return execute(id, { type: "expire", at: new Date() }, undefined, workerId);
    },

    async consume({ requester, target, fingerprint, sql }) {
      if (requester === undefined) throw new GrpcError(Code.INVALID_ARGUMENT, "requester is required");
      const key = principalKey(requester);
      for (const [id, entry] of approvals) {
        const r = entry.state.request;
        if (entry.state.status !== "approved" || r.mode !== "deferred") continue;
        if (principalKey(r.requester) !== key || r.target !== target || r.sql !== sql) continue;
        if (fingerprint !== "" && r.fingerprint !== "" && r.fingerprint !== fingerprint) continue;
        if (r.expiresAt.getTime() < Date.now()) continue;
        try {
          await execute(id, { type: "consume", requester, at: new Date() }, requester);
          return { id };
        } catch (error) {
          if (error instanceof GrpcError && error.code === Code.FAILED_PRECONDITION) continue; // consumed elsewhere
          throw error;
        }
      }
      return { id: "" };
    },

    async announce({ id, channel, ts }, context) {
      const who = await callers.delegate(context, "only a delegate (the Slack bot) announces requests");
      return execute(id, { type: "announce", channel, ts, at: new Date() }, who);
    },

    async requestGrant({ target, classes, seconds, reason }, context) {
      const approvers = options.grantApprovers ?? [];
      if (approvers.length === 0) throw new GrpcError(Code.FAILED_PRECONDITION, "grants are not configured here");
      const requester = await callers.caller(context);
      const wanted = [...new Set(classes.map((c) => c.trim()).filter((c) => c !== ""))];
      if (target === "" || wanted.length === 0) {
        throw new GrpcError(Code.INVALID_ARGUMENT, "a grant needs a target and classes");
      }
      const max = options.maxGrantSeconds ?? 8 * 3600;
      if (seconds < 1 || seconds > max) throw new GrpcError(Code.INVALID_ARGUMENT, `a grant lasts 1 to ${max} seconds`);
      const result = await newRequest(
        {
          requester,
          target,
          sessionId: "",
          sql: `grant ${wanted.join(", ")} on ${target} for ${seconds} s${reason ? `: ${reason}` : ""}`,
          parameters: [],
          rule: "grant",
          reason,
          approverGroups: [...approvers],
          approvalsRequired: 1,
          estimatedRows: -1n,
          objects: wanted,
          fingerprint: "",
          mode: "grant",
          grantClasses: wanted,
          grantSeconds: seconds,
        },
        options.defaultTimeoutSeconds ?? 300,
      );
      logger.info({ approval: result.id, target, classes: wanted, seconds }, "grant requested");
      return result;
    },

    ...grants.methods,

    async *watch({ id }, { signal }) {
      let dirty = new Set<string>(id === "" ? approvals.keys() : [id]);
      let wake: (() => void) | undefined;
      const listener = (changed: string) => {
        if (id !== "" && changed !== id) return;
        dirty.add(changed);
        wake?.();
      };
      watchers.add(listener);
      try {
        if (id !== "" && !approvals.has(id)) {
          const entry = await load(id);
          if (!approvals.has(id)) approvals.set(id, entry);
        }
        while (!signal.aborted) {
          if (dirty.size === 0) {
            await new Promise<void>((resolve) => {
              wake = resolve;
              signal.addEventListener("abort", () => resolve(), { once: true });
            });
            wake = undefined;
            continue;
          }
          const sending = dirty;
          dirty = new Set();
          for (const changed of sending) {
            const v = view(changed);
            if (v !== undefined) yield v;
          }
        }
      } finally {
        watchers.delete(listener);
      }
    },
  };

  const follow = async () => {
    for await (const recorded of store.subscribeAll({ fromPosition: head + 1n, signal: shutdown.signal })) {
      apply(recorded);
    }
  };

  const sweep = async () => {
    const now = Date.now();
    for (const [id, entry] of approvals) {
      if (entry.state.request.mode === "grant" && entry.state.status === "approved" && !grants.has(id)) {
        await issueGrant(id).catch((error: unknown) =>
          logger.warn({ err: error, grant: id }, "issuing a grant failed"),
        );
      }
      if (entry.state.status !== "pending" || entry.state.request.expiresAt.getTime() > now) continue;
      try {
        await execute(id, { type: "expire", at: new Date() }, undefined);
        logger.info({ approval: id }, "approval expired");
      } catch (error) {
        logger.warn({ err: error, approval: id }, "expiring an approval failed; the next sweep retries");
      }
    }
  };

  return {
    async listen() {
      if (server !== undefined) throw new Error("the approval service listens only once");
      // Catch up with every approval in the store, then follow new events live.
      for await (const recorded of store.readAll({ signal: shutdown.signal })) apply(recorded);
      following = follow().catch((error: unknown) => {
        if (!shutdown.signal.aborted) logger.error({ err: error }, "following the event store failed");
      });
      sweeper = setInterval(() => void sweep(), options.sweepIntervalMs ?? 5000);
      sweeper.unref();
      server = new Server();
      addService(server, ApprovalService, handlers, { signal: shutdown.signal, logger });
      const port = await bindServer(server, options.listen);
      const address = options.listen.replace(/:\d+$/, `:${port}`);
      if (!isLoopback(address)) logger.warn({ address }, "plaintext gRPC on a non-loopback address");
      logger.info({ address, approvals: approvals.size, instance }, "approval service listening");
      return { address, port };
    },

    async close() {
      clearInterval(sweeper);
      shutdown.abort();
      if (server !== undefined) {
        const s = server;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            s.forceShutdown();
            resolve();
          }, 2000);
          timer.unref();
          s.tryShutdown(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      await following;
    },
  };
}
