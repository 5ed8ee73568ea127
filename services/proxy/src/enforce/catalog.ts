import type { ConnectionOptions } from "node:tls";
import type { Target } from "@agentgate/config";
import type { FunctionCatalog } from "@agentgate/sql";
import type { Logger } from "pino";
import { targetClient } from "../target-client.ts";

type Volatility = "i" | "s" | "v";

// User-defined functions only: built-ins are judged by the SQL analysis's own lists, which know which volatile
// built-ins are harmless and which are dangerous whatever the catalog says. With overloads, the most volatile wins.
const QUERY = `
  SELECT lower(p.proname) AS name, lower(n.nspname) AS schema, max(p.provolatile) AS volatility
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
  GROUP BY 1, 2`;

const RANK: Record<Volatility, number> = { i: 0, s: 1, v: 2 };

/**
 * The volatility of a target's own functions, read from its catalog with the gateway's credential and refreshed
 * periodically, so `SELECT my_stable_fn()` can be a read while `SELECT my_volatile_fn()` stays a write. Until the
 * first load (or when it fails), functions are unknown, which the analysis treats as writes: fail closed.
 */
export class TargetCatalog implements FunctionCatalog {
  #byName = new Map<string, Volatility>();
  #loadedAt = 0;
  #loading: Promise<void> | undefined;

  constructor(
    private readonly target: Target,
    private readonly tls: ConnectionOptions | undefined,
    private readonly logger: Logger,
    private readonly maxAgeMs = 30_000,
  ) {}

  volatility(name: string): Volatility | undefined {
    return this.#byName.get(name);
  }

  /** Loads the catalog if it is missing or older than maxAgeMs; resolves when it is usable (or known to be not). */
  fresh(): Promise<void> {
    if (Date.now() - this.#loadedAt < this.maxAgeMs) return Promise.resolve();
    this.#loading ??= this.#load().finally(() => {
      this.#loading = undefined;
    });
    return this.#loading;
  }

  /** Forgets the load time, so the next session reloads (after DDL went through, for example). */
  stale(): void {
    this.#loadedAt = 0;
  }

  async #load(): Promise<void> {
    const client = targetClient(this.target, this.tls, "agentgate-catalog");
    try {
      await client.connect();
      const { rows } = await client.query<{ name: string; schema: string; volatility: Volatility }>(QUERY);
      const byName = new Map<string, Volatility>();
      for (const { name, schema, volatility } of rows) {
        byName.set(`${schema}.${name}`, volatility);
        const unqualified = byName.get(name);
        if (unqualified === undefined || RANK[volatility] > RANK[unqualified]) byName.set(name, volatility);
      }
      this.#byName = byName;
      this.#loadedAt = Date.now();
    } catch (error) {
      this.logger.warn(
        { err: error, target: this.target.name },
        "function catalog not loaded: unknown functions are writes",
      );
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}
