import type { Config } from "./schema.ts";

/** A database the gateway connects to on behalf of agents, with the credential only the gateway holds. */
export interface Target {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password: string | undefined;
  readonly tls: TargetTls;
}

/** How the gateway secures its connection to a target; `ca` is the PEM file's path. */
export interface TargetTls {
  readonly mode: "disable" | "require" | "verify-ca" | "verify-full";
  readonly ca?: string | undefined;
}

/** Resolves the configured targets by name. */
export function resolveTargets(config: Config): Map<string, Target> {
  const targets = new Map<string, Target>();
  for (const [name, { url, tls }] of Object.entries(config.targets)) {
    const u = new URL(url);
    const target: Target = {
      name,
      host: u.hostname.replace(/^\[(.*)\]$/, "$1") || "127.0.0.1",
      port: u.port === "" ? 5432 : Number(u.port),
      database: decodeURIComponent(u.pathname.replace(/^\//, "")) || name,
      user: decodeURIComponent(u.username) || "postgres",
      password: u.password === "" ? undefined : decodeURIComponent(u.password),
      tls: tls ?? { mode: "disable" },
    };
    // Keep the credential out of any accidental serialisation (logs, JSON dumps).
    Object.defineProperty(target, "password", { enumerable: false });
    targets.set(name, target);
  }
  return targets;
}
