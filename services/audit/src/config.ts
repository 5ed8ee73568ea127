import { type AuditConfig, auditConfigSchema, ConfigError, interpolate, readYamlFile } from "@agentgate/config";

export { type AuditConfig, auditConfigSchema } from "@agentgate/config";
/** Validates the `audit` section of a parsed agentgate.yaml; problems are ConfigErrors naming the key. */
export function parseAuditConfig(document: unknown, env: NodeJS.ProcessEnv = process.env): AuditConfig {
  const section = (document as { audit?: unknown } | null | undefined)?.audit;
  if (section === undefined || section === null) throw new ConfigError("audit", "the audit section is missing");
  const result = auditConfigSchema.safeParse(interpolate(section, env, ["audit"]));
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new ConfigError(["audit", ...issue.path.map(String)].join("."), issue.message);
  }
  return result.data;
}

/** Reads the `audit` section of a YAML config file (the rest of the file is not checked here). */
export function loadAuditConfig(file: string, env: NodeJS.ProcessEnv = process.env): AuditConfig {
  return parseAuditConfig(readYamlFile(file), env);
}
