// JIT grants in the approval service: the grant decider run against `grant-<id>` streams, a projection of every
// grant kept from the store's subscription, and the gRPC methods that list, watch and revoke grants.
import type { ApprovalService } from "@agentgate/events";
import type { EventStore, RecordedEvent } from "@agentgate/eventstore";
import { Code, GrpcError, type ServiceImpl } from "@agentgate/grpc";
import type { Logger } from "pino";
import type { ApprovalState } from "./approval-decider.ts";
import { createCommandHandler } from "./command-handler.ts";
import { GRANT_PREFIX, grantFromStored, grantStreamOf, grantToStored, grantViewOf } from "./grant-codec.ts";
import { type GrantCommand, type GrantState, grantDecider, type IssuedGrant, inForce } from "./grant-decider.ts";
import { type Callers, refusalsAsStatus } from "./rpc.ts";

export interface GrantsOptions {
  store: EventStore;
  callers: Callers;
  /** Groups whose members revoke grants. */
  grantApprovers: readonly string[];
  instance: string;
  logger: Logger;
}

type GrantMethods = Pick<ServiceImpl<typeof ApprovalService>, "revokeGrant" | "listGrants" | "watchGrants">;

export interface Grants {
  /** Folds a recorded event into the projection; false when it is not a grant event. */
  apply(recorded: RecordedEvent): boolean;
  /** Whether grant `id` is known to the projection (issued, whether or not still in force). */
  has(id: string): boolean;
  /** Issues grant `id`, which approval `id` (an approved grant request) asks for; nothing when issued already. */
  issue(id: string, approval: ApprovalState): Promise<void>;
  methods: GrantMethods;
}

export function createGrants(options: GrantsOptions): Grants {
  const { callers, logger, instance } = options;
  const handler = createCommandHandler(options.store, grantDecider, (recorded) => grantFromStored(recorded)?.event);
  const grants = new Map<string, IssuedGrant>();
  const watchers = new Set<() => void>();

  const remember = (grantId: string, state: GrantState) => {
    if (state.status === "none") return;
    grants.set(grantId, state);
    for (const wake of watchers) wake();
  };

  const inForceNow = (): IssuedGrant[] => {
    const now = new Date();
    return [...grants.values()].filter((g) => inForce(g, now));
  };

  const run = (grantId: string, command: GrantCommand) =>
    handler.handle(grantStreamOf(grantId), command, (event, before) =>
      grantToStored(event, { grantId, target: before.status === "none" ? "" : before.target, workerId: instance }),
    );

  const methods: GrantMethods = {
    async revokeGrant({ id, reason }, context) {
      const by = await callers.caller(context);
      const command = { type: "revoke", by, grantApprovers: options.grantApprovers, reason, at: new Date() } as const;
      const revoked = await refusalsAsStatus(() => run(id, command));
      remember(id, revoked.state);
      logger.info({ grant: id, by: by.subject }, "grant revoked");
      if (revoked.state.status === "none") throw new GrpcError(Code.NOT_FOUND, "no such grant"); // decide refuses first
      return grantViewOf(revoked.state);
    },

    async listGrants() {
      return { grants: inForceNow().map(grantViewOf) };
    },

    async *watchGrants(_request, { signal }) {
      let changed = true;
      let wake: (() => void) | undefined;
      const listener = () => {
        changed = true;
        wake?.();
      };
      watchers.add(listener);
      try {
        while (!signal.aborted) {
          if (changed) {
            changed = false;
            yield { grants: inForceNow().map(grantViewOf) };
          }
          // Also wake when the next grant expires, so the set shrinks on time.
          const next = Math.min(...inForceNow().map((g) => g.expiresAt.getTime()));
          let timer: NodeJS.Timeout | undefined;
          await new Promise<void>((resolve) => {
            wake = resolve;
            if (Number.isFinite(next)) timer = setTimeout(listener, next - Date.now() + 5);
            signal.addEventListener("abort", () => resolve(), { once: true });
            if (changed) resolve();
          });
          clearTimeout(timer);
          wake = undefined;
        }
      } finally {
        watchers.delete(listener);
      }
    },
  };

  return {
    apply(recorded) {
      if (!recorded.stream.startsWith(GRANT_PREFIX)) return false;
      const decoded = grantFromStored(recorded);
      if (decoded === undefined) return true;
      const state = grantDecider.evolve(grants.get(decoded.grantId) ?? grantDecider.initialState(), decoded.event);
      remember(decoded.grantId, state);
      return true;
    },

    has: (id) => grants.has(id),

    async issue(id, approval) {
      const issued = await refusalsAsStatus(() => run(id, { type: "issue", approval, at: new Date() }));
      const [event] = issued.events;
      if (event?.type !== "issued") return; // issued already
      remember(id, issued.state);
      logger.info({ grant: id, target: event.target, classes: event.classes, until: event.expiresAt }, "grant issued");
    },

    methods,
  };
}
