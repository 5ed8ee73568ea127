import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { ConfigError } from "./errors.ts";
import { type Config, configSchema } from "./schema.ts";

/** Replaces `${VAR}` in every string of a parsed document with the environment's value; `$${` escapes a literal `${`. */
export function interpolate(value: unknown, env: NodeJS.ProcessEnv, path: string[] = []): unknown {
  if (typeof value === "string") {
    return value.replace(/\$?\$\{([^}]*)\}/g, (whole, name: string) => {
      if (whole.startsWith("$$")) return whole.slice(1);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        throw new ConfigError(keyOf(path), `invalid environment reference \${${name}}`);
      }
      const found = env[name];
      if (found === undefined) throw new ConfigError(keyOf(path), `environment variable ${name} is not set`);
      return found;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, [...path, String(i)]));
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env, [...path, k])]));
  }
  return value;
}

/** Validates a parsed document; the first problem becomes a ConfigError naming its key. */
export function parseConfig(document: unknown, env: NodeJS.ProcessEnv = process.env): Config {
  const result = configSchema.safeParse(interpolate(document ?? {}, env));
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new ConfigError(keyOf(issue.path.map(String)), issue.message);
  }
  return result.data;
}

/** Reads, interpolates and validates a YAML config file. */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Config {
  return parseConfig(readYamlFile(file), env);
}

/** Reads and parses a YAML file; errors name the file and position, never quote its content (it may hold secrets). */
export function readYamlFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (cause) {
    throw new ConfigError("", `cannot read config file ${file}: ${(cause as NodeJS.ErrnoException).code ?? cause}`, {
      cause,
    });
  }
  let document: unknown;
  try {
    document = parseYaml(text, { prettyErrors: true });
  } catch (cause) {
    // YAML errors quote the offending line, which may hold a secret: keep only the position.
    const pos = (cause as { linePos?: { line: number; col: number }[] }).linePos?.[0];
    const where = pos ? ` at line ${pos.line}, column ${pos.col}` : "";
    throw new ConfigError("", `config file ${file} is not valid YAML${where}`, { cause });
  }
  return document;
}

function keyOf(path: readonly string[]): string {
  return path.join(".");
}
