// The gRPC edge of the approval service: who is calling (a verified bearer token, or a delegate deciding for
// someone), and the deciders' refusals as gRPC statuses.
import type { Principal } from "@agentgate/events";
import { type CallContext, Code, GrpcError } from "@agentgate/grpc";
import { SignInError, type TokenVerifier } from "@agentgate/identity";
import { ApprovalRefused } from "./decider.ts";

const REFUSAL_CODES: Record<ApprovalRefused["code"], Code> = {
  not_found: Code.NOT_FOUND,
  exists: Code.ALREADY_EXISTS,
  not_pending: Code.FAILED_PRECONDITION,
  self_approval: Code.PERMISSION_DENIED,
  not_an_approver: Code.PERMISSION_DENIED,
  already_decided: Code.ALREADY_EXISTS,
  not_the_requester: Code.PERMISSION_DENIED,
  not_in_force: Code.FAILED_PRECONDITION,
  invalid: Code.INVALID_ARGUMENT,
};

/** Runs `decided`, turning a decider's refusal into the gRPC status it stands for. */
export async function refusalsAsStatus<T>(decided: () => Promise<T>): Promise<T> {
  try {
    return await decided();
  } catch (error) {
    if (error instanceof ApprovalRefused) throw new GrpcError(REFUSAL_CODES[error.code], error.message);
    throw error;
  }
}

export interface Callers {
  /** The principal of the call's bearer token. */
  caller(context: CallContext): Promise<Principal>;
  /** Who decides: the token's principal, or the one a trusted delegate (the Slack bot) decides for. */
  approver(context: CallContext, onBehalfOf: Principal | undefined): Promise<Principal>;
  /** The caller, who must be a delegate (else PERMISSION_DENIED with `refusal` as the message). */
  delegate(context: CallContext, refusal: string): Promise<Principal>;
}

export function createCallers(verifier: TokenVerifier | undefined, delegates: readonly string[] = []): Callers {
  const caller = async (context: CallContext): Promise<Principal> => {
    if (verifier === undefined) {
      throw new GrpcError(Code.UNAUTHENTICATED, "this approval service verifies no approver tokens");
    }
    const header = context.metadata.get("authorization")[0];
    const token = typeof header === "string" && /^Bearer /i.test(header) ? header.slice(7).trim() : "";
    if (token === "") {
      throw new GrpcError(Code.UNAUTHENTICATED, "a bearer token (the caller's OIDC access token) is required");
    }
    try {
      const p = await verifier.verify(token, context.signal);
      return {
        $typeName: "agentgate.v1.Principal",
        subject: p.subject,
        groups: p.groups,
        issuer: p.issuer,
        clientId: p.clientId ?? "",
      };
    } catch (error) {
      if (error instanceof SignInError) {
        throw new GrpcError(Code.UNAUTHENTICATED, `approver token refused: ${error.message}`);
      }
      throw error;
    }
  };

  const delegate = async (context: CallContext, refusal: string): Promise<Principal> => {
    const who = await caller(context);
    if (who.clientId === "" || !delegates.includes(who.clientId)) throw new GrpcError(Code.PERMISSION_DENIED, refusal);
    return who;
  };

  return {
    caller,
    delegate,
    async approver(context, onBehalfOf) {
      if (onBehalfOf === undefined) return caller(context);
      await delegate(context, "this caller may not decide on behalf of others");
      if (onBehalfOf.subject === "") throw new GrpcError(Code.INVALID_ARGUMENT, "on_behalf_of needs a subject");
      return onBehalfOf;
    },
  };
}
