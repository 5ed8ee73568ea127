import { EventStoreError } from "../errors.ts";

/** Wraps a database failure, keeping the PostgreSQL error (and its SQLSTATE) as the cause. */
export function storageError(doing: string, error: unknown): EventStoreError {
  if (error instanceof EventStoreError) return error;
  const { message, code } = error as { message?: string; code?: string };
  const hint = code === "42P01" || code === "3F000" ? " (has migrate() been run for this schema?)" : "";
  const sqlState = typeof code === "string" ? ` [SQLSTATE ${code}]` : "";
  return new EventStoreError("storage", `${doing}: ${message ?? String(error)}${sqlState}${hint}`, { cause: error });
}
