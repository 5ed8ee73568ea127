import { type ChildProcess, execFileSync, type SpawnOptions, spawn } from "node:child_process";
import { chownSync } from "node:fs";
import { isMainThread } from "node:worker_threads";
import { lookupBinary } from "./binaries.ts";
import { childExit } from "./child.ts";

/** The account server binaries run as when we are root. */
export interface ServerUser {
  uid: number;
  gid: number;
  name: string;
}

const CANDIDATES = ["postgres", "nobody"];
let cachedUser: ServerUser | undefined | null = null;
let cachedSetpriv: string | undefined | null = null;

/**
 * The unprivileged user servers run as when this process is root (PostgreSQL and pgbouncer refuse to run as
 * root): `postgres` if it exists, else `nobody`; undefined when we are not root and nothing needs to change.
 */
export function serverUser(): ServerUser | undefined {
  if (cachedUser === null) cachedUser = process.getuid?.() === 0 ? findUser() : undefined;
  return cachedUser;
}

export interface SpawnServerOptions extends SpawnOptions {
  /** Run as serverUser() when root; default true. */
  unprivileged?: boolean;
}

/**
 * Spawns a server binary that belongs to the test kit's lifetime: as serverUser() when root, never detached,
 * and on Linux wrapped in `setpriv --pdeathsig KILL` so it dies with us even if we are SIGKILLed.
 */
export function spawnServer(command: string, args: readonly string[], options: SpawnServerOptions = {}): ChildProcess {
  const { unprivileged = true, ...spawnOptions } = options;
  const user = unprivileged ? serverUser() : undefined;
  const setpriv = deathSignalWrapper();
  const [file, argv] =
    setpriv === undefined ? [command, args] : [setpriv, ["--pdeathsig", "KILL", "--", command, ...args]];
  const child = spawn(file, argv, {
    ...spawnOptions,
    detached: false,
    ...(user === undefined ? {} : { uid: user.uid, gid: user.gid }),
  });
  childExit(child);
  return child;
}

/** Hands paths we created to serverUser() so the server can write there; a no-op when not root. */
export function chownToServerUser(...paths: string[]): void {
  const user = serverUser();
  if (user === undefined) return;
  for (const path of paths) chownSync(path, user.uid, user.gid);
}

function findUser(): ServerUser | undefined {
  for (const name of CANDIDATES) {
    try {
      const uid = Number(execFileSync("id", ["-u", name], { encoding: "utf8", stdio: "pipe" }).trim());
      const gid = Number(execFileSync("id", ["-g", name], { encoding: "utf8", stdio: "pipe" }).trim());
      if (Number.isInteger(uid) && Number.isInteger(gid)) return { uid, gid, name };
    } catch {
      // No such user; try the next one.
    }
  }
  return undefined;
}

// The parent-death signal fires when the spawning *thread* ends, so only the main thread may use it.
function deathSignalWrapper(): string | undefined {
  if (cachedSetpriv === null) {
    cachedSetpriv = process.platform === "linux" && isMainThread ? lookupBinary("setpriv") : undefined;
  }
  return cachedSetpriv;
}
