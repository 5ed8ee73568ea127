import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { ConfigError, interpolate, readYamlFile } from "@agentgate/config";
import { type PolicyServiceConfig, policyServiceSchema, RulesError } from "@agentgate/policy";
import { createPolicyService, type PolicyServer } from "@agentgate/policy-service";
import { pino } from "pino";
import { z } from "zod";
import { closeOnSignal } from "./signals.ts";
import { UsageError } from "./usage.ts";

/** `agentgate policy`: the policy service, from the `policy:` section of the config file, until SIGTERM/SIGINT. */
export async function runPolicy(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: "string", short: "c" } }, strict: true });
  const file = values.config ?? process.env.AGENTGATE_CONFIG;
  if (file === undefined) throw new UsageError("no config file: pass --config FILE or set AGENTGATE_CONFIG");
  const { policy, logLevel } = loadPolicySection(file);
  const logger = pino({ level: logLevel });
  let service: PolicyServer;
  try {
    service = createPolicyService({ ...policy, logger });
  } catch (error) {
    if (error instanceof RulesError) {
      throw new ConfigError(policy.rulesFile ? "policy.rulesFile" : "policy.rules", error.message, { cause: error });
    }
    throw error;
  }
  await service.listen();
  await closeOnSignal(() => service.close());
  return 0;
}

const sectionsSchema = z.object({
  policy: policyServiceSchema,
  log: z.object({ level: z.enum(["fatal", "error", "warn", "info", "debug", "trace"]).default("info") }).default({
    level: "info",
  }),
});

// Until libs/config embeds policyServiceSchema, only the `policy:` and `log:` sections are read here (other sections
// are the proxy's to validate). A relative rulesFile is taken from the config file's directory.
function loadPolicySection(file: string): { policy: PolicyServiceConfig; logLevel: string } {
  const document = readYamlFile(file);
  const { policy, log } = (document ?? {}) as { policy?: unknown; log?: unknown };
  if (policy === undefined || policy === null)
    throw new ConfigError("policy", "missing: the policy service is configured there");
  const sections = {
    policy: interpolate(policy, process.env, ["policy"]),
    log: interpolate(log, process.env, ["log"]),
  };
  const result = sectionsSchema.safeParse(sections);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new ConfigError(issue.path.map(String).join("."), issue.message);
  }
  const { rulesFile } = result.data.policy;
  return {
    policy: { ...result.data.policy, ...(rulesFile ? { rulesFile: resolve(dirname(file), rulesFile) } : {}) },
    logLevel: result.data.log.level,
  };
}
