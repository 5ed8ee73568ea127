import {
  ADMIN_BUILTINS,
  ADMIN_PREFIXES,
  DYNAMIC_BUILTINS,
  HARMLESS_VOLATILE_BUILTINS,
  READ_ONLY_BUILTINS,
  SESSION_BUILTINS,
  WRITE_BUILTINS,
} from "./builtins.ts";
import type { StatementClass } from "./classes.ts";
import type { TargetFacts } from "./types.ts";

/**
 * What calling a function does:
 * - read: changes nothing.
 * - write, session, admin: as the statement classes of the same name.
 * - dynamic: runs SQL the analysis cannot see (procedural + write).
 * - set_config: depends on the setting named by the first argument.
 * - unknown: not a built-in and not in the catalog; counts as a write.
 */
export type FunctionEffect = "read" | "write" | "session" | "admin" | "dynamic" | "set_config" | "unknown";

/**
 * Judges a function call. `parts` is the name as the parser gives it (case kept for quoted names: a quoted "NOW"
 * is not the built-in now); `name` is the lower-cased, dotted name the catalog is asked about.
 *
 * Order: built-ins with side effects are judged by this library whatever the catalog says, matched on the last
 * name part in any schema and any case (extensions such as dblink live outside pg_catalog; a look-alike is
 * over-classified, never under-); then the catalog, which knows the target's own functions (a volatile one is a
 * write even where it shares a harmless built-in's name, as a public.random(int) does: PostgreSQL picks it by
 * argument type, which the parse tree does not show; immutable and stable ones read); then the built-in lists;
 * anything else is unknown.
 */
export function functionEffect(parts: readonly string[], name: string, catalog?: TargetFacts): FunctionEffect {
  const last = parts[parts.length - 1];
  const fixed = last === undefined ? undefined : fixedEffect(last.toLowerCase());
  if (fixed !== undefined) return fixed;
  const builtin = builtinName(parts);
  const volatility = catalog?.volatility(name);
  if (volatility === "v") return "write";
  if (volatility === "i" || volatility === "s") return "read";
  if (builtin !== undefined && (READ_ONLY_BUILTINS.has(builtin) || HARMLESS_VOLATILE_BUILTINS.has(builtin))) {
    return "read";
  }
  return "unknown";
}

/** The pg_catalog name a call can resolve to: unqualified or qualified with pg_catalog. */
function builtinName(parts: readonly string[]): string | undefined {
  if (parts.length === 1) return parts[0];
  if (parts.length === 2 && parts[0] === "pg_catalog") return parts[1];
  return undefined;
}

function fixedEffect(name: string): FunctionEffect | undefined {
  if (name === "set_config") return "set_config";
  if (WRITE_BUILTINS.has(name)) return "write";
  if (SESSION_BUILTINS.has(name)) return "session";
  if (ADMIN_BUILTINS.has(name) || ADMIN_PREFIXES.some((prefix) => name.startsWith(prefix))) return "admin";
  if (DYNAMIC_BUILTINS.has(name)) return "dynamic";
  return undefined;
}

/** Classes of each effect when the call is hidden (in a view, a policy, a cast): what the statement then does. */
const HIDDEN_CLASSES: Readonly<Record<FunctionEffect, readonly StatementClass[]>> = {
  read: [],
  write: ["write"],
  session: ["session"],
  admin: ["admin"],
  dynamic: ["write", "procedural"],
  // A hidden set_config() may name any setting: role, or the backstop's session default.
  set_config: ["session", "privilege"],
  unknown: ["write"],
};

/**
 * What running a routine found in the target's catalog does, as statement classes ([] for nothing that may
 * write), for a catalog that resolves views, operators, casts and policies to the functions they call. `user`:
 * outside pg_catalog and information_schema. Built-ins with side effects by name, whatever their schema; a user
 * function by its volatility; a volatile built-in by the lists (an unlisted one is a write).
 */
export function routineClasses(name: string, volatility: "i" | "s" | "v", user: boolean): readonly StatementClass[] {
  const fixed = fixedEffect(name.toLowerCase());
  if (fixed !== undefined) return HIDDEN_CLASSES[fixed];
  if (volatility !== "v") return HIDDEN_CLASSES.read;
  if (!user && (READ_ONLY_BUILTINS.has(name) || HARMLESS_VOLATILE_BUILTINS.has(name))) return HIDDEN_CLASSES.read;
  return HIDDEN_CLASSES.write;
}

/** Names judged by name whatever their volatility (for a catalog query that fetches only what may matter). */
export const FIXED_EFFECT_NAMES: readonly string[] = [
  "set_config",
  ...WRITE_BUILTINS,
  ...SESSION_BUILTINS,
  ...ADMIN_BUILTINS,
  ...DYNAMIC_BUILTINS,
];
