import type { ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findBinary } from "./binaries.ts";
import { delay, fileSize, isRunning, lastLines, readFrom, spawnLogged, stopChild } from "./child.ts";
import { type Resource, track } from "./cleanup.ts";
import { TestkitError } from "./errors.ts";
import { acceptsConnections, freePort } from "./ports.ts";

export interface NatsOptions {
  /** Enable JetStream with file storage under storeDir; default true. */
  jetstream?: boolean;
}

export interface NatsInstance {
  /** nats://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  /** JetStream's store directory (`-sd`); it survives kill() and start(). */
  readonly storeDir: string;
  /** nats-server's version as it logs it, e.g. "2.9.10". */
  readonly version: string;
  /** Graceful shutdown (SIGTERM), wait for exit, remove the store; safe to call more than once. */
  stop(): Promise<void>;
  /** SIGKILL, as a crash would; the store directory stays. */
  kill(): Promise<void>;
  /** Starts again on the same port and store directory after kill(); a no-op while running. */
  start(): Promise<void>;
}

const INSTALL_HINT = "apt-get install -y nats-server";
const READY_TIMEOUT_MS = 15_000;
const PORT_ATTEMPTS = 3;

/** Starts a throwaway nats-server (JetStream on by default) on a free loopback port. */
export async function startNats(options: NatsOptions = {}): Promise<NatsInstance> {
  const jetstream = options.jetstream ?? true;
  const binary = findBinary("nats-server", INSTALL_HINT);
  const root = await mkdtemp(join(tmpdir(), "agentgate-nats-"));
  const resource: Resource = { child: undefined, dirs: [root] };
  const untrack = track(resource);
  const storeDir = join(root, "store");
  const logPath = join(root, "nats-server.log");
  const args = (port: number) => [
    "-a",
    "127.0.0.1",
    "-p",
    String(port),
    ...(jetstream ? ["-js", "-sd", storeDir] : []),
  ];

  const run = async (port: number): Promise<"ready" | "port-taken"> => {
    const offset = fileSize(logPath);
    resource.child = spawnLogged(binary, args(port), logPath, { unprivileged: false });
    return waitUntilReady(resource.child, port, logPath, offset);
  };

  try {
    let port = 0;
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      if ((await run(port)) === "ready") break;
      if (attempt === PORT_ATTEMPTS) {
        throw new TestkitError("start_failed", `nats-server lost the race for a free port ${PORT_ATTEMPTS} times`);
      }
    }

    let stopping: Promise<void> | undefined;
    return {
      url: `nats://127.0.0.1:${port}`,
      port,
      storeDir,
      version: /Version:\s+(\S+)/.exec(readFrom(logPath, 0))?.[1] ?? "unknown",
      stop: () => {
        stopping ??= (async () => {
          if (resource.child !== undefined) await stopChild(resource.child, "SIGTERM");
          await rm(root, { recursive: true, force: true, maxRetries: 3 });
          untrack();
        })();
        return stopping;
      },
      kill: async () => {
        if (resource.child !== undefined) await stopChild(resource.child, "SIGKILL");
      },
      start: async () => {
        if (stopping !== undefined) throw new TestkitError("stopped", "this nats-server instance was stopped");
        if (resource.child !== undefined && isRunning(resource.child)) return;
        if ((await run(port)) === "port-taken") {
          throw new TestkitError("start_failed", `port ${port} was taken while nats-server was down`);
        }
      },
    };
  } catch (error) {
    if (resource.child !== undefined) await stopChild(resource.child, "SIGKILL");
    await rm(root, { recursive: true, force: true, maxRetries: 3 });
    untrack();
    throw error;
  }
}

async function waitUntilReady(
  child: ChildProcess,
  port: number,
  logPath: string,
  logOffset: number,
): Promise<"ready" | "port-taken"> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const log = readFrom(logPath, logOffset);
    if (!isRunning(child)) {
      if (/address already in use/i.test(log)) return "port-taken";
      throw new TestkitError("start_failed", `nats-server exited during startup; log tail:\n${lastLines(log)}`);
    }
    if (log.includes("Server is ready") && (await acceptsConnections(port))) return "ready";
    if (Date.now() > deadline) {
      await stopChild(child, "SIGKILL");
      throw new TestkitError(
        "start_timeout",
        `nats-server was not ready within ${READY_TIMEOUT_MS} ms; log tail:\n${lastLines(log)}`,
      );
    }
    await delay(25);
  }
}
