import { createHash } from "node:crypto";
import { escapeIdentifier } from "pg";
import { EventStoreError } from "../errors.ts";

/** Schema used when none is given. */
export const DEFAULT_SCHEMA = "eventstore";

/** Every name the adapter derives from its schema. */
export interface StoreNames {
  schema: string;
  /** The quoted, schema-qualified events table. */
  events: string;
  /** pg_advisory_xact_lock key that serialises appends to this schema's log (advisory locks are per database). */
  lockKey: bigint;
  /** LISTEN/NOTIFY channel announcing appends. */
  channel: string;
}

// Short enough that "<schema>_appended" stays within PostgreSQL's 63-byte identifiers.
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,47}$/;

export function storeNames(schema: string = DEFAULT_SCHEMA): StoreNames {
  requireIdentifier(schema, "schema");
  const digest = createHash("sha256").update(`agentgate.eventstore:${schema}`).digest();
  return {
    schema,
    events: `${escapeIdentifier(schema)}.events`,
    lockKey: digest.readBigInt64BE(0),
    channel: `${schema}_appended`,
  };
}

export function requireIdentifier(name: string, what: string): void {
  if (typeof name !== "string" || !IDENTIFIER.test(name)) {
    throw new EventStoreError(
      "invalid_argument",
      `${what} must be a lowercase identifier of at most 48 characters ([a-z_][a-z0-9_]*), got ${String(name)}`,
    );
  }
}
