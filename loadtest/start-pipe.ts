import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { type Server, stopChild } from "./processes.ts";

const pipeScript = fileURLToPath(new URL("./pipe.ts", import.meta.url));

/** Forks loadtest/pipe.ts (through tsx) in front of PostgreSQL and waits for the port it reports. */
export async function startPipe(upstream: { host: string; port: number }): Promise<Server> {
  const child = fork(pipeScript, [upstream.host, String(upstream.port)], {
    execArgv: ["--import", "tsx"],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once("message", (message) => resolve((message as { port: number }).port));
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`pipe exited with code ${code} before listening`)));
  });
  return {
    host: "127.0.0.1",
    port,
    pid: child.pid ?? 0,
    stop: () => stopChild(child),
  };
}
