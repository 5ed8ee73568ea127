// Runs every *.test.ts with node:test against one PostgreSQL and one nats-server started for this run.
// Usage: node --import tsx scripts/test.ts [path filters...]
import { existsSync, readdirSync } from "node:fs";
import { constants } from "node:os";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type NatsInstance,
  type PostgresInstance,
  postgresEnvValue,
  spawnServer,
  startNats,
  startPostgres,
  TEST_NATS_ENV,
  TEST_PG_ENV,
} from "../libs/testkit/src/index.ts";

const root = fileURLToPath(new URL("..", import.meta.url));

function testFiles(filters: readonly string[]): string[] {
  const roots = [
    ...subdirs("libs").map((lib) => join("libs", lib, "src")),
    ...subdirs("services").map((service) => join("services", service, "src")),
    "loadtest",
  ];
  const files = roots.flatMap((dir) => walk(join(root, dir))).map((file) => relative(root, file));
  return files.filter((file) => filters.length === 0 || filters.some((filter) => file.includes(filter))).sort();
}

function subdirs(dir: string): string[] {
  const path = join(root, dir);
  if (!existsSync(path)) return [];
  return readdirSync(path, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name);
}

function walk(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (entry.name === "node_modules" || entry.name.startsWith(".")) return [];
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return walk(path);
    return entry.isFile() && entry.name.endsWith(".test.ts") ? [path] : [];
  });
}

function runTests(files: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  // spawnServer for its parent-death signal: the runner must not outlive us even if we are SIGKILLed.
  const args = ["--import", "tsx", "--test", "--test-concurrency=2", ...files];
  const child = spawnServer(process.execPath, args, { cwd: root, env, stdio: "inherit", unprivileged: false });
  // Registered only now: a signal during server startup keeps the test kit's default (clean up, then die).
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on("SIGINT", forward);
  process.on("SIGTERM", forward);
  return new Promise((resolve) => {
    child.once("error", (error) => {
      console.error(`could not start node --test: ${error.message}`);
      resolve(1);
    });
    child.once("exit", (code, signal) => {
      process.off("SIGINT", forward);
      process.off("SIGTERM", forward);
      resolve(code ?? 128 + (signal === null ? 0 : constants.signals[signal]));
    });
  });
}

async function main(): Promise<number> {
  const filters = process.argv.slice(2);
  const files = testFiles(filters);
  if (files.length === 0) {
    console.error(filters.length === 0 ? "no *.test.ts files found" : `no test files match: ${filters.join(" ")}`);
    return 1;
  }

  let pg: PostgresInstance | undefined;
  let nats: NatsInstance | undefined;
  try {
    [pg, nats] = await Promise.all([startPostgres(), startNats()]);
    console.log(
      `testkit: PostgreSQL ${pg.version} on 127.0.0.1:${pg.port}, nats-server ${nats.version} (JetStream) on ` +
        `127.0.0.1:${nats.port}; running ${files.length} test file(s)`,
    );
    return await runTests(files, { ...process.env, [TEST_PG_ENV]: postgresEnvValue(pg), [TEST_NATS_ENV]: nats.url });
  } finally {
    await Promise.allSettled([pg?.stop(), nats?.stop()]);
  }
}

process.exit(await main());
