export {
  type ApprovalCommand,
  type ApprovalEvent,
  type ApprovalState,
  approvalDecider,
} from "./approval-decider.ts";
export { ApprovalRefused, type Decider, fold, type RefusalCode } from "./decider.ts";
export { type GrantCommand, type GrantEvent, type GrantState, grantDecider, inForce } from "./grant-decider.ts";
export { type ApprovalServer, type ApprovalServiceOptions, createApprovalService } from "./service.ts";
