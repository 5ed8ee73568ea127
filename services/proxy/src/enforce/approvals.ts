import { type Approval, ApprovalService, ApprovalState, type RequestApprovalRequestSchema } from "@agentgate/events";
import { Code, createClient, GrpcError } from "@agentgate/grpc";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Logger } from "pino";

export type ApprovalRequest = Omit<MessageInitShape<typeof RequestApprovalRequestSchema>, "$typeName">;

/** How a held statement's request ended. */
export type ApprovalOutcome =
  | { state: "approved"; approval: Approval }
  | { state: "denied"; approval: Approval }
  | { state: "expired"; approval: Approval }
  | { state: "withdrawn"; approval: Approval | undefined };

/** The proxy's view of the approval service. */
export interface ApprovalPort {
  request(request: ApprovalRequest, signal?: AbortSignal): Promise<Approval>;
  /**
   * Waits until the approval is decided. When `signal` aborts first, the request is withdrawn (reason: the signal's);
   * after `timeoutMs` it is expired. Never rejects for those: the outcome says what happened.
   */
  wait(id: string, timeoutMs: number, signal: AbortSignal): Promise<ApprovalOutcome>;
  /** An approved deferred request for exactly this statement, used up by this call; undefined when there is none. */
  consume(request: {
    requester: ApprovalRequest["requester"];
    target: string;
    fingerprint: string;
    sql: string;
  }): Promise<string | undefined>;
  close(): void;
}

export interface GrpcApprovalOptions {
  address: string;
  deadlineMs: number;
  workerId: string;
  logger: Logger;
}

const RETRY_MS = 250;

/** The approval service over gRPC; a wait follows the approval's Watch stream, reconnecting while the service is away. */
export function createGrpcApprovals(options: GrpcApprovalOptions): ApprovalPort {
  const client = createClient(ApprovalService, options.address, { deadlineMs: options.deadlineMs });
  const { logger, workerId } = options;

  const end = async (kind: "withdraw" | "expire", id: string, reason: string): Promise<Approval | undefined> => {
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        return await client[kind]({ id, reason, workerId });
      } catch (error) {
        logger.warn({ err: error, approval: id, attempt }, `could not ${kind} the approval request; retrying`);
        await new Promise((r) => setTimeout(r, RETRY_MS * (attempt + 1)));
      }
    }
    return undefined; // the service's sweeper expires it in the end
  };

  return {
    request: (request, signal) => client.request(request, signal === undefined ? {} : { signal }),

    async wait(id, timeoutMs, signal) {
      const deadline = Date.now() + timeoutMs;
      const stop = new AbortController();
      const timer = setTimeout(() => stop.abort("timeout"), timeoutMs);
      const onAbort = () => stop.abort("aborted");
      signal.addEventListener("abort", onAbort, { once: true });
      try {
        while (!stop.signal.aborted) {
          try {
            for await (const approval of client.watch({ id }, { signal: stop.signal })) {
              switch (approval.state) {
                case ApprovalState.APPROVED:
                case ApprovalState.CONSUMED:
                  return { state: "approved", approval };
                case ApprovalState.DENIED:
                  return { state: "denied", approval };
                case ApprovalState.EXPIRED:
                  return { state: "expired", approval };
                case ApprovalState.WITHDRAWN:
                  return { state: "withdrawn", approval };
              }
            }
          } catch (error) {
            if (stop.signal.aborted) break;
            if (error instanceof GrpcError && error.code === Code.NOT_FOUND) throw error;
            logger.warn({ err: error, approval: id }, "approval watch interrupted; watching again");
            await new Promise((r) => setTimeout(r, Math.min(RETRY_MS, Math.max(0, deadline - Date.now()))));
          }
        }
        if (stop.signal.reason === "timeout") {
          const approval = await end("expire", id, "timed out");
          // Decided in the last instant: the decision stands.
          if (approval?.state === ApprovalState.APPROVED) return { state: "approved", approval };
          if (approval?.state === ApprovalState.DENIED) return { state: "denied", approval };
          return approval === undefined ? { state: "withdrawn", approval } : { state: "expired", approval };
        }
        const reason = signal.reason instanceof Error ? signal.reason.message : String(signal.reason ?? "withdrawn");
        return { state: "withdrawn", approval: await end("withdraw", id, reason) };
      } finally {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        stop.abort();
      }
    },

    async consume({ requester, target, fingerprint, sql }) {
      const { id } = await client.consume({ requester, target, fingerprint, sql });
      return id === "" ? undefined : id;
    },

    close: () => client.close(),
  };
}
