import type { ChildProcess } from "node:child_process";
import { rmSync } from "node:fs";
import { isRunning } from "./child.ts";

/** Something that must not outlive this process: a server child (replaced on restart) and the directories it owns. */
export interface Resource {
  child: ChildProcess | undefined;
  readonly dirs: readonly string[];
}

const resources = new Set<Resource>();
let hooked = false;

/** Registers a resource for the exit-time cleanup; the returned function unregisters it once stopped normally. */
export function track(resource: Resource): () => void {
  installHooks();
  resources.add(resource);
  return () => {
    resources.delete(resource);
  };
}

/** Kills every tracked child with SIGKILL and removes its directories, synchronously (usable in an exit handler). */
export function cleanupNow(): void {
  const tracked = [...resources];
  resources.clear();
  let killed = false;
  for (const resource of tracked) {
    if (resource.child !== undefined && isRunning(resource.child)) {
      resource.child.kill("SIGKILL");
      killed = true;
    }
  }
  removeDirs(tracked);
  if (killed) {
    // Grandchildren (PostgreSQL backends) notice their postmaster's death a moment later and may still
    // write a file or two; wait briefly without the event loop, then sweep again.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 150);
    removeDirs(tracked);
  }
}

function removeDirs(tracked: readonly Resource[]): void {
  for (const resource of tracked) {
    for (const dir of resource.dirs) {
      try {
        rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
      } catch {
        // Best effort at exit: nothing sensible is left to do with the error.
      }
    }
  }
}

function installHooks(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", cleanupNow);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    const onSignal = () => {
      // Another listener owns shutdown for this signal (scripts/test.ts stops its servers itself);
      // the exit hook stays as the backstop.
      if (process.listenerCount(signal) > 1) return;
      cleanupNow();
      process.removeListener(signal, onSignal);
      // Die of the signal as if we had never listened, so the parent sees the usual exit status.
      process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}
