export { type AuditConfig, auditConfigSchema, loadAuditConfig, parseAuditConfig } from "./config.ts";
export { createIngester, type Ingester, type IngesterOptions, type IngesterStats } from "./ingester/ingester.ts";
export { createLivenessSweeper, type LivenessOptions, type LivenessSweeper } from "./liveness.ts";
export { createProjector, type Projector, type ProjectorOptions } from "./projections/projector.ts";
export {
  type ApprovalRecord,
  createReadModel,
  type ReadModel,
  type ReadModelOptions,
  type SessionFilter,
  type SessionSummary,
  type StatementRecord,
} from "./projections/read-model.ts";
export { DEFAULT_READ_SCHEMA, READ_MODEL_PROJECTION } from "./projections/schema.ts";
export { parseTimeOrAgo, type ReplayOptions, renderReplay, renderSessions } from "./render.ts";
export { type AuditService, createAuditService } from "./service.ts";
