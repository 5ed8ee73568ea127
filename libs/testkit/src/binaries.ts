import { accessSync, constants, readdirSync, realpathSync, statSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { TestkitError } from "./errors.ts";

const SYSTEM_DIRS = ["/usr/local/sbin", "/usr/sbin", "/sbin"];
const POSTGRES_ROOT = "/usr/lib/postgresql";

/**
 * Finds an executable on PATH, then in the sbin directories, then in /usr/lib/postgresql/<version>/bin
 * (highest version first); throws a TestkitError carrying `hint` (how to install it) when it is nowhere.
 */
export function findBinary(name: string, hint: string): string {
  const found = lookupBinary(name);
  if (found === undefined) {
    throw new TestkitError(
      "binary_not_found",
      `${name} not found (searched PATH, ${SYSTEM_DIRS.join(", ")}, ${POSTGRES_ROOT}/*/bin): ${hint}`,
    );
  }
  return found;
}

/** Like findBinary, but undefined when missing. */
export function lookupBinary(name: string): string | undefined {
  const pathDirs = (process.env.PATH ?? "").split(delimiter).filter((dir) => dir !== "");
  for (const dir of [...pathDirs, ...SYSTEM_DIRS, ...postgresBinDirs()]) {
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/**
 * The executable `name` next to `binary` after resolving symlinks, so that initdb and postgres
 * come from the same PostgreSQL installation.
 */
export function siblingBinary(binary: string, name: string): string | undefined {
  const candidate = join(dirname(realpathSync(binary)), name);
  return isExecutable(candidate) ? candidate : undefined;
}

function postgresBinDirs(): string[] {
  let versions: string[];
  try {
    versions = readdirSync(POSTGRES_ROOT);
  } catch {
    return [];
  }
  return versions
    .sort((a, b) => b.localeCompare(a, "en", { numeric: true }))
    .map((version) => join(POSTGRES_ROOT, version, "bin"));
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
