import { type FSWatcher, readFileSync, type Stats, statSync, watch } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { RulesError } from "@agentgate/policy";
import type { Logger } from "pino";

/** The text of a rules file; an unreadable file is a RulesError like any other problem with the rules. */
export async function readRulesText(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (cause) {
    throw unreadable(file, cause);
  }
}

/** The same at start-up, where the service must not come up without valid rules. */
export function readRulesTextSync(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (cause) {
    throw unreadable(file, cause);
  }
}

function unreadable(file: string, cause: unknown): RulesError {
  const code = (cause as NodeJS.ErrnoException).code ?? String(cause);
  return new RulesError([{ key: "", reason: `cannot read the rules file (${code})` }], { source: file, cause });
}

export interface WatchOptions {
  /** How often the file is stat'ed in case change events are missed (editors and ConfigMaps replace files). */
  pollIntervalMs: number;
  /** Quiet time after the last change before `onChange` runs, so a file written in pieces is read once. */
  debounceMs: number;
  logger: Logger;
}

/**
 * Calls `onChange` (debounced) when the file may have changed: `fs.watch` on its directory, which also sees the file
 * replaced by a rename, plus a periodic stat in case events are lost or never come (network filesystems, symlink swaps).
 */
export function watchRulesFile(file: string, onChange: () => void, options: WatchOptions): { close(): void } {
  let debounce: NodeJS.Timeout | undefined;
  const changed = () => {
    clearTimeout(debounce);
    debounce = setTimeout(onChange, options.debounceMs);
    debounce.unref();
  };

  let watcher: FSWatcher | undefined;
  const pollOnly = (error: unknown) => {
    options.logger.warn({ err: error, file }, "cannot watch the rules file's directory; polling it instead");
    watcher?.close();
    watcher = undefined;
  };
  try {
    watcher = watch(dirname(file), { persistent: false }, (_event, name) => {
      if (name === null || name === basename(file)) changed();
    });
    watcher.on("error", pollOnly);
  } catch (error) {
    pollOnly(error);
  }

  let last = fingerprintSync(file);
  let polling = false;
  const poll = setInterval(() => {
    if (polling) return;
    polling = true;
    stat(file)
      .then(fingerprint, () => "missing")
      .then((now) => {
        if (now !== last) changed();
        last = now;
      })
      .finally(() => {
        polling = false;
      });
  }, options.pollIntervalMs);
  poll.unref();

  return {
    close() {
      clearInterval(poll);
      clearTimeout(debounce);
      watcher?.close();
    },
  };
}

function fingerprintSync(file: string): string {
  try {
    return fingerprint(statSync(file));
  } catch {
    return "missing";
  }
}

function fingerprint(stats: Stats): string {
  return `${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`;
}
