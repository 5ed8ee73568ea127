import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import type { ConnectionOptions } from "node:tls";
import { ConfigError, type Target } from "@agentgate/config";

/** TLS options for connecting to each target, read once at start; targets without TLS are absent. */
export function upstreamTlsOptions(targets: ReadonlyMap<string, Target>): Map<string, ConnectionOptions> {
  const options = new Map<string, ConnectionOptions>();
  for (const target of targets.values()) {
    const { mode, ca } = target.tls;
    if (mode === "disable") continue;
    const caPem = ca === undefined ? undefined : readCa(target.name, ca);
    const servername = isIP(target.host) === 0 ? target.host : undefined;
    switch (mode) {
      case "require":
        options.set(target.name, { rejectUnauthorized: false, servername });
        break;
      case "verify-ca":
        // The chain must lead to the CA; the host name is not checked (libpq's verify-ca).
        options.set(target.name, { ca: caPem, servername, checkServerIdentity: () => undefined });
        break;
      case "verify-full":
        options.set(target.name, { ca: caPem, servername });
        break;
    }
  }
  return options;
}

function readCa(name: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (cause) {
    throw new ConfigError(`targets.${name}.tls.ca`, `cannot read ${path}: ${(cause as NodeJS.ErrnoException).code}`);
  }
}
