export * from "./gen/agentgate/v1/approval_pb.ts";
export * from "./gen/agentgate/v1/audit_pb.ts";
export * from "./gen/agentgate/v1/common_pb.ts";
export * from "./gen/agentgate/v1/policy_pb.ts";
export * from "./gen/agentgate/v1/session_pb.ts";
