export { revisionOf } from "./revision.ts";
export {
  createPolicyService,
  type PolicyServer,
  type PolicyServiceOptions,
  type ReloadResult,
} from "./service.ts";
