export { type AuditConfig, auditConfigSchema } from "./audit.ts";
export { ConfigError } from "./errors.ts";
export { interpolate, loadConfig, parseConfig, readYamlFile } from "./load.ts";
export { type Config, configSchema, type IdentityConfig, type ProxyConfig } from "./schema.ts";
export { resolveTargets, type Target, type TargetTls } from "./target.ts";
