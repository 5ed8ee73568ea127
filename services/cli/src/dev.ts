import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { parseConfig } from "@agentgate/config";
import { createProxy } from "@agentgate/proxy";
import { startPostgres } from "@agentgate/testkit";
import { pino } from "pino";
import { untilSignal } from "./proxy.ts";
import { UsageError } from "./usage.ts";

const SEED = new URL("../../../infra/demo/seed.sql", import.meta.url);

/** `agentgate dev`: a throwaway PostgreSQL with sample data, behind a gateway, until Ctrl-C. */
export async function runDev(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: "string", short: "p", default: "6432" },
      "log-level": { type: "string", default: "info" },
    },
    strict: true,
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port: not a port: ${values.port}`);

  process.stderr.write("starting a throwaway PostgreSQL for the demo target...\n");
  const pg = await startPostgres();
  try {
    const database = await pg.createDatabase("demo");
    await pg.query(readFileSync(SEED, "utf8"), [], database);
    const config = parseConfig({
      proxy: { listen: `127.0.0.1:${port}`, drainTimeoutMs: 5000 },
      targets: { demo: { url: pg.url(database) } },
      log: { level: values["log-level"] },
    });
    const proxy = createProxy({ config, logger: pino({ level: config.log.level }, pino.destination(2)) });
    const address = await proxy.listen();
    const where = `${address.address}:${address.port}`;
    process.stdout.write(
      [
        "",
        `agentgate dev is running: gateway on ${where}, target "demo" (PostgreSQL ${pg.version.split(" ")[0]}, sample data).`,
        "",
        "Connect with any PostgreSQL client, for example:",
        `  psql "postgresql://agent@${where}/demo" -c "SELECT name, email FROM customers LIMIT 5"`,
        "",
        "Ctrl-C stops the gateway and removes the demo database.",
        "",
      ].join("\n"),
    );
    await untilSignal(proxy);
  } finally {
    await pg.stop();
  }
  return 0;
}
