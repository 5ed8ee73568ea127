import { closeSync, openSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { freePort, spawnServer, waitForPort } from "@agentgate/testkit";
import { makeTempDir, type Server, stopChild, tail } from "./processes.ts";

/** The CLI that runs the gateway; the benchmark skips the gateway when it is not there yet. */
export const gatewayEntry = fileURLToPath(new URL("../services/cli/bin/agentgate.js", import.meta.url));

/** The database name clients use to reach the benchmark target through the gateway. */
export const gatewayTarget = "bench";

/**
 * The gateway's YAML configuration: one listener, one target, any extra `proxy:` lines (already indented) and any
 * extra top-level sections (`identity:` ...). Strings are written as JSON, which YAML accepts.
 */
export function gatewayConfig(
  port: number,
  upstreamUrl: string,
  extraProxy: string[] = [],
  extraTop: string[] = [],
): string {
  return [
    ...extraTop,
    "proxy:",
    `  listen: ${JSON.stringify(`127.0.0.1:${port}`)}`,
    ...extraProxy,
    "targets:",
    `  ${gatewayTarget}:`,
    `    url: ${JSON.stringify(upstreamUrl)}`,
    "",
  ].join("\n");
}

/**
 * Starts `agentgate proxy` as a separate process (`entry`: another checkout's CLI, for a same-run comparison); its
 * pino log goes to a file in a temp dir that `stop()` removes.
 */
export async function startGateway(
  upstreamUrl: string,
  extraProxy: string[] = [],
  extraTop: string[] = [],
  entry: string = gatewayEntry,
): Promise<Server> {
  const { path: dir, remove: cleanup } = makeTempDir("agentgate-gateway-");
  try {
    const port = await freePort();
    const configPath = join(dir, "agentgate.yaml");
    const logPath = join(dir, "gateway.log");
    writeFileSync(configPath, gatewayConfig(port, upstreamUrl, extraProxy, extraTop), { mode: 0o600 });
    const log = openSync(logPath, "w");
    // Not unprivileged (it is our own code), but tied to our lifetime: it dies with us even if we are killed.
    const child = spawnServer(process.execPath, [entry, "proxy", "--config", configPath], {
      unprivileged: false,
      stdio: ["ignore", log, log],
    });
    closeSync(log);
    try {
      await waitForPort(port, child, "agentgate proxy");
    } catch (error) {
      await stopChild(child);
      throw new Error(`agentgate proxy did not start; log:\n${tail(logPath)}`, { cause: error });
    }
    return {
      host: "127.0.0.1",
      port,
      pid: child.pid ?? 0,
      stop: async () => {
        await stopChild(child);
        cleanup();
      },
    };
  } catch (error) {
    cleanup();
    throw error;
  }
}
