import { randomUUID } from "node:crypto";
import {
  type ApprovalSchema,
  ApprovalService,
  ApprovalState,
  type GrantSchema,
  type Principal,
} from "@agentgate/events";
import { type EventStore, WrongExpectedRevisionError } from "@agentgate/eventstore";
import {
  addService,
  bindServer,
  type CallContext,
  Code,
  GrpcError,
  isLoopback,
  type ServiceImpl,
} from "@agentgate/grpc";
import { SignInError, type TokenVerifier } from "@agentgate/identity";
import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Server } from "@grpc/grpc-js";
import { type Logger, pino } from "pino";
import {
  applyGrantEvent,
  fromStored,
  GRANT_PREFIX,
  type GrantFacts,
  grantIssued,
  grantRevoked,
  isApprovalEventType,
  STREAM_PREFIX,
  stateOf,
  streamOf,
  toStored,
  viewOf,
} from "./codec.ts";
import {
  type ApprovalCommand,
  type ApprovalEvent,
  ApprovalRefused,
  decide,
  evolve,
  principalKey,
  type ApprovalState as State,
} from "./decider.ts";

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
type GrantView = MessageInitShape<typeof GrantSchema>;

interface Entry {
  state: State;
  revision: bigint;
  position: bigint;
}

const REFUSAL_CODES: Record<ApprovalRefused["code"], Code> = {
  not_found: Code.NOT_FOUND,
  exists: Code.ALREADY_EXISTS,
  not_pending: Code.FAILED_PRECONDITION,
  self_approval: Code.PERMISSION_DENIED,
  not_an_approver: Code.PERMISSION_DENIED,
  already_decided: Code.ALREADY_EXISTS,
  not_the_requester: Code.PERMISSION_DENIED,
  invalid: Code.INVALID_ARGUMENT,
};

/**
 * The approval service: an event-sourced aggregate per approval (a decider, appended with optimistic concurrency),
 * a projection of every approval kept live from the store's subscription (so any instance sees what any other
 * appended), and the gRPC API proxies, the CLI and the Slack bot use.
 */
export function createApprovalService(options: ApprovalServiceOptions): ApprovalServer {
  const logger = (options.logger ?? pino()).child({ service: "approval" });
  const store = options.store;
  const instance = options.instanceId ?? `approval-${randomUUID().slice(0, 8)}`;
  const shutdown = new AbortController();
  const approvals = new Map<string, Entry>();
  const watchers = new Set<(id: string) => void>();
  let head = 0n;
  let server: Server | undefined;
  let following: Promise<void> | undefined;
  let sweeper: NodeJS.Timeout | undefined;

  const grants = new Map<string, GrantFacts>();
  const grantWatchers = new Set<() => void>();
  const applyGrant = (recorded: Parameters<typeof fromStored>[0]) => {
    if (!applyGrantEvent(grants, recorded)) return;
    for (const wake of grantWatchers) wake();
  };

  const apply = (recorded: Parameters<typeof fromStored>[0]) => {
    if (recorded.position > head) head = recorded.position;
    if (recorded.stream.startsWith(GRANT_PREFIX)) return applyGrant(recorded);
    if (!recorded.stream.startsWith(STREAM_PREFIX) || !isApprovalEventType(recorded.type)) return;
    const decoded = fromStored(recorded);
    if (decoded === undefined) return;
    const previous = approvals.get(decoded.approvalId);
    const state = evolve(previous?.state, decoded.event);
    if (state === undefined) return;
    approvals.set(decoded.approvalId, { state, revision: recorded.revision, position: recorded.position });
    for (const wake of watchers) wake(decoded.approvalId);
  };

  /** Loads an approval from its stream (authoritative, unlike the projection, which may lag another instance). */
  const load = async (id: string): Promise<Entry | undefined> => {
    let entry: Entry | undefined;
    for await (const recorded of store.readStream(streamOf(id))) {
      const decoded = fromStored(recorded);
      if (decoded === undefined) continue;
      const state = evolve(entry?.state, decoded.event);
      if (state !== undefined) entry = { state, revision: recorded.revision, position: recorded.position };
    }
    return entry;
  };

  /** Decides a command against the stream as stored and appends the result, retrying when another instance won. */
  const execute = async (
    id: string,
    command: ApprovalCommand,
    actor: Principal | undefined,
    workerId = instance,
  ): Promise<View> => {
    for (let attempt = 0; ; attempt++) {
      const entry = command.type === "request" ? undefined : await load(id);
      let events: ApprovalEvent[];
      try {
        events = decide(command, entry?.state);
      } catch (error) {
        if (error instanceof ApprovalRefused) throw new GrpcError(REFUSAL_CODES[error.code], error.message);
        throw error;
      }
      if (events.length === 0) return viewOf(entry!.state, entry!.position);
      const request = entry?.state.request ?? (events[0]!.type === "requested" ? events[0] : undefined);
      const cx = {
        approvalId: id,
        request: request && { requester: request.requester, target: request.target, sessionId: request.sessionId },
        actor,
        workerId,
      };
      try {
        const result = await store.append(
          streamOf(id),
          events.map((e) => toStored(e, cx)),
          { expectedRevision: entry === undefined ? "no_stream" : entry.revision },
        );
        let state = entry?.state;
        for (const event of events) state = evolve(state, event);
        return viewOf(state!, result.position);
      } catch (error) {
        if (error instanceof WrongExpectedRevisionError && attempt < 5) continue;
        throw error;
      }
    }
  };

  const caller = async (context: CallContext): Promise<Principal> => {
    if (options.verifier === undefined) {
      throw new GrpcError(Code.UNAUTHENTICATED, "this approval service verifies no approver tokens");
    }
    const header = context.metadata.get("authorization")[0];
    const token = typeof header === "string" && /^Bearer /i.test(header) ? header.slice(7).trim() : "";
    if (token === "")
      throw new GrpcError(Code.UNAUTHENTICATED, "a bearer token (the caller's OIDC access token) is required");
    try {
      const p = await options.verifier.verify(token, context.signal);
      return {
        $typeName: "agentgate.v1.Principal",
        subject: p.subject,
        groups: p.groups,
        issuer: p.issuer,
        clientId: p.clientId ?? "",
      };
    } catch (error) {
      if (error instanceof SignInError)
        throw new GrpcError(Code.UNAUTHENTICATED, `approver token refused: ${error.message}`);
      throw error;
    }
  };

  /** Who decides: the token's principal, or the one a trusted delegate (the Slack bot) decides for. */
  const approver = async (context: CallContext, onBehalfOf: Principal | undefined): Promise<Principal> => {
    const who = await caller(context);
    if (onBehalfOf === undefined) return who;
    if (!(options.delegates ?? []).includes(who.clientId) || who.clientId === "") {
      throw new GrpcError(Code.PERMISSION_DENIED, "this caller may not decide on behalf of others");
    }
    if (onBehalfOf.subject === "") throw new GrpcError(Code.INVALID_ARGUMENT, "on_behalf_of needs a subject");
    return onBehalfOf;
  };

  /** Issues the grant of an approved grant request (once: the stream must not exist yet). */
  const issueGrant = async (id: string): Promise<void> => {
    const entry = await load(id);
    if (entry === undefined || entry.state.request.mode !== "grant" || entry.state.status !== "approved") return;
    const r = entry.state.request;
    const at = new Date();
    const expiresAt = new Date(at.getTime() + r.grantSeconds * 1000);
    const event = grantIssued(
      id,
      { principal: r.requester, target: r.target, classes: r.grantClasses, expiresAt },
      at,
      instance,
    );
    try {
      await store.append(`${GRANT_PREFIX}${id}`, [event], { expectedRevision: "no_stream" });
      logger.info({ grant: id, target: r.target, classes: r.grantClasses, seconds: r.grantSeconds }, "grant issued");
    } catch (error) {
      if (!(error instanceof WrongExpectedRevisionError)) throw error; // issued already (another instance)
    }
  };

  const activeGrants = (): GrantView[] => {
    const now = Date.now();
    const out: GrantView[] = [];
    for (const [id, g] of grants) {
      if (g.revoked || g.expiresAt.getTime() <= now) continue;
      out.push({
        id,
        principal: g.principal,
        target: g.target,
        classes: g.classes,
        expiresAt: timestampFromDate(g.expiresAt),
      });
    }
    return out;
  };

  const view = (id: string): View | undefined => {
    const entry = approvals.get(id);
    return entry && viewOf(entry.state, entry.position);
  };

  const handlers: ServiceImpl<typeof ApprovalService> = {
    async request(request) {
      if (request.requester === undefined) throw new GrpcError(Code.INVALID_ARGUMENT, "requester is required");
      if (request.target === "") throw new GrpcError(Code.INVALID_ARGUMENT, "target is required");
      const id = randomUUID();
      const at = new Date();
      const seconds = request.timeoutSeconds || (options.defaultTimeoutSeconds ?? 300);
      const result = await execute(
        id,
        {
          type: "request",
          request: {
            approvalId: id,
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
            at,
            expiresAt: new Date(at.getTime() + seconds * 1000),
          },
        },
        request.requester,
        request.workerId || instance,
      );
      logger.info({ approval: id, target: request.target, rule: request.rule }, "approval requested");
      return result;
    },

    async get({ id }) {
      const known = view(id);
      if (known !== undefined) return known;
      const entry = await load(id);
      if (entry === undefined) throw new GrpcError(Code.NOT_FOUND, "no such approval");
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
      const who = await approver(context, onBehalfOf);
      const result = await execute(id, { type: "approve", approver: who, via: via || "api", at: new Date() }, who);
      logger.info({ approval: id, approver: who.subject, via }, "approval granted by one approver");
      if (result.state === ApprovalState.APPROVED && result.mode === "grant") await issueGrant(id);
      return result;
    },

    async deny({ id, reason, via, onBehalfOf }, context) {
      const who = await approver(context, onBehalfOf);
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
      const who = await caller(context);
      if (!(options.delegates ?? []).includes(who.clientId) || who.clientId === "") {
        throw new GrpcError(Code.PERMISSION_DENIED, "only a delegate (the Slack bot) announces requests");
      }
      return execute(id, { type: "announce", channel, ts, at: new Date() }, who);
    },

    async requestGrant({ target, classes, seconds, reason }, context) {
      const approvers = options.grantApprovers ?? [];
      if (approvers.length === 0) throw new GrpcError(Code.FAILED_PRECONDITION, "grants are not configured here");
      const requester = await caller(context);
      const wanted = [...new Set(classes.map((c) => c.trim()).filter((c) => c !== ""))];
      if (target === "" || wanted.length === 0)
        throw new GrpcError(Code.INVALID_ARGUMENT, "a grant needs a target and classes");
      const max = options.maxGrantSeconds ?? 8 * 3600;
      if (seconds < 1 || seconds > max) throw new GrpcError(Code.INVALID_ARGUMENT, `a grant lasts 1 to ${max} seconds`);
      const id = randomUUID();
      const at = new Date();
      const result = await execute(
        id,
        {
          type: "request",
          request: {
            approvalId: id,
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
            at,
            expiresAt: new Date(at.getTime() + (options.defaultTimeoutSeconds ?? 300) * 1000),
          },
        },
        requester,
      );
      logger.info({ approval: id, target, classes: wanted, seconds }, "grant requested");
      return result;
    },

    async revokeGrant({ id, reason }, context) {
      const who = await caller(context);
      const groups = new Set(who.groups);
      if (!(options.grantApprovers ?? []).some((g) => groups.has(g))) {
        throw new GrpcError(Code.PERMISSION_DENIED, "only grant approvers may revoke grants");
      }
      const grant = grants.get(id);
      if (grant === undefined) throw new GrpcError(Code.NOT_FOUND, "no such grant");
      const at = new Date();
      const event = grantRevoked(id, who, grant.target, reason, at, instance);
      try {
        await store.append(`${GRANT_PREFIX}${id}`, [event], { expectedRevision: 0n });
      } catch (error) {
        if (error instanceof WrongExpectedRevisionError)
          throw new GrpcError(Code.FAILED_PRECONDITION, "the grant was already revoked");
        throw error;
      }
      grant.revoked = true;
      for (const wake of grantWatchers) wake();
      logger.info({ grant: id, by: who.subject }, "grant revoked");
      return {
        id,
        principal: grant.principal,
        target: grant.target,
        classes: grant.classes,
        expiresAt: timestampFromDate(grant.expiresAt),
      };
    },

    async listGrants() {
      return { grants: activeGrants() };
    },

    async *watchGrants(_request, { signal }) {
      let changed = true;
      let wake: (() => void) | undefined;
      const listener = () => {
        changed = true;
        wake?.();
      };
      grantWatchers.add(listener);
      try {
        while (!signal.aborted) {
          if (changed) {
            changed = false;
            yield { grants: activeGrants() };
          }
          // Also wake when the next grant expires, so the set shrinks on time.
          const next = Math.min(
            ...[...grants.values()]
              .filter((g) => !g.revoked && g.expiresAt.getTime() > Date.now())
              .map((g) => g.expiresAt.getTime()),
          );
          let timer: NodeJS.Timeout | undefined;
          await new Promise<void>((resolve) => {
            wake = resolve;
            if (Number.isFinite(next)) {
              timer = setTimeout(
                () => {
                  changed = true;
                  resolve();
                },
                next - Date.now() + 5,
              );
            }
            signal.addEventListener("abort", () => resolve(), { once: true });
            if (changed) resolve();
          });
          clearTimeout(timer);
          wake = undefined;
        }
      } finally {
        grantWatchers.delete(listener);
      }
    },

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
          if (entry === undefined) throw new GrpcError(Code.NOT_FOUND, "no such approval");
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
