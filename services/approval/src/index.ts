export { ApprovalRefused, decide, evolve } from "./decider.ts";
export { type ApprovalServer, type ApprovalServiceOptions, createApprovalService } from "./service.ts";
