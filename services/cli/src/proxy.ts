import { parseArgs } from "node:util";
import { loadConfig } from "@agentgate/config";
import { createProxy, type ProxyWorker } from "@agentgate/proxy";
import { UsageError } from "./usage.ts";

export async function runProxy(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { config: { type: "string", short: "c" } }, strict: true });
  const file = values.config ?? process.env.AGENTGATE_CONFIG;
  if (file === undefined) throw new UsageError("no config file: pass --config FILE or set AGENTGATE_CONFIG");
  const proxy = createProxy({ config: loadConfig(file) });
  await proxy.listen();
  await untilSignal(proxy);
  return 0;
}

/** Drains on the first SIGTERM/SIGINT; a second one closes the remaining sessions at once. */
export function untilSignal(proxy: ProxyWorker, before?: () => Promise<void>): Promise<void> {
  return new Promise((resolve) => {
    let stopping = false;
    const stop = () => {
      if (stopping) {
        proxy.close({ drainTimeoutMs: 0 }).then(resolve, resolve);
        return;
      }
      stopping = true;
      (before?.() ?? Promise.resolve()).then(() => proxy.close()).then(resolve, resolve);
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
  });
}
