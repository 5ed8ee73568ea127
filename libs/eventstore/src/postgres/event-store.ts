import pg from "pg";
import type { CheckpointSigner } from "../checkpoint.ts";
import type { CheckpointPolicy } from "../checkpoint-plan.ts";
import { EventStoreError } from "../errors.ts";
import type { ChainHead, EventStore, RecordedEvent } from "../store.ts";
import { validateAppend, validateStream } from "../validate.ts";
import { appendCheckpoint } from "./append.ts";
import { createAppendWriter } from "./group-commit.ts";
import { storeNames } from "./names.ts";
import { readAll, readStream } from "./read.ts";
import { storageError } from "./storage-error.ts";
import { subscribeAll } from "./subscribe.ts";

export interface PostgresEventStoreOptions {
  /** Connect as the writer role migrate() granted INSERT and SELECT. */
  connectionString: string;
  /** Default "eventstore". */
  schema?: string;
  /** Signs checkpoints; without it the store appends none. */
  signer?: CheckpointSigner;
  /** With a signer, default { events: 1000, seconds: 60 }. */
  checkpointEvery?: { events?: number; seconds?: number };
  /** Pool size; default 10. */
  maxConnections?: number;
  /** subscribeAll re-reads this often even without a notification; default 1000 ms. */
  pollIntervalMs?: number;
  /** Failures of timed checkpoints (appends report their own); default: ignored, the next tick retries. */
  onBackgroundError?: (error: unknown) => void;
}

export interface PostgresEventStore extends EventStore {
  readonly schema: string;
  /** Signs the head now unless the head already is a checkpoint; needs a signer. */
  checkpoint(): Promise<RecordedEvent | undefined>;
}

/** The event store on PostgreSQL: one events table; appends group-committed under an advisory lock (append.ts). */
export function createPostgresEventStore(options: PostgresEventStoreOptions): PostgresEventStore {
  const names = storeNames(options.schema);
  const checkpoints = checkpointPolicy(options);
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.maxConnections ?? 10,
    application_name: "agentgate-eventstore",
  });
  // Idle connections that the server ends must not crash the process; the next query reconnects.
  pool.on("error", () => {});
  const writer = createAppendWriter(pool, names, checkpoints);
  const closing = new AbortController();
  const timer = startCheckpointTimer(checkpoints, options, () => appendCheckpoint(pool, names, checkpoints!, "timer"));

  const open = () => {
    if (closing.signal.aborted) throw new EventStoreError("closed", "the event store is closed");
  };
  const readAllEvents = (readOptions = {}) => {
    open();
    return readAll(pool, names, readOptions);
  };

  return {
    schema: names.schema,
    async append(stream, events, appendOptions = {}) {
      open();
      const expectedRevision = appendOptions.expectedRevision ?? "any";
      const valid = validateAppend(stream, events, expectedRevision);
      appendOptions.signal?.throwIfAborted();
      return writer.append({ stream, events: valid, expectedRevision, signal: appendOptions.signal });
    },
    readStream(stream, readOptions) {
      open();
      validateStream(stream);
      return readStream(pool, names, stream, readOptions);
    },
    readAll: readAllEvents,
    subscribeAll(subscribeOptions) {
      open();
      return subscribeAll(
        {
          connectionString: options.connectionString,
          names,
          readAll: readAllEvents,
          closed: closing.signal,
          pollIntervalMs: options.pollIntervalMs ?? 1000,
        },
        subscribeOptions,
      );
    },
    async head(): Promise<ChainHead | undefined> {
      open();
      try {
        const { rows } = await pool.query<{ position: string; hash: string }>(
          `SELECT position, hash FROM ${names.events} ORDER BY position DESC LIMIT 1`,
        );
        return rows[0] && { position: BigInt(rows[0].position), hash: rows[0].hash };
      } catch (error) {
        throw storageError("reading the head", error);
      }
    },
    async checkpoint() {
      open();
      if (checkpoints === undefined) throw new EventStoreError("invalid_argument", "checkpoint() needs a signer");
      return appendCheckpoint(pool, names, checkpoints, "now");
    },
    async close() {
      if (closing.signal.aborted) return;
      closing.abort();
      await Promise.all([timer.stop(), writer.drain()]);
      await pool.end();
    },
  };
}

function checkpointPolicy(options: PostgresEventStoreOptions): CheckpointPolicy | undefined {
  const { signer, checkpointEvery } = options;
  if (signer === undefined) {
    if (checkpointEvery !== undefined) {
      throw new EventStoreError("invalid_argument", "checkpointEvery needs a signer to sign checkpoints");
    }
    return undefined;
  }
  const every = checkpointEvery ?? { events: 1000, seconds: 60 };
  for (const [key, value] of Object.entries(every)) {
    if (value !== undefined && !(Number.isFinite(value) && value > 0)) {
      throw new EventStoreError("invalid_argument", `checkpointEvery.${key} must be a positive number, got ${value}`);
    }
  }
  if (every.events !== undefined && !Number.isSafeInteger(every.events)) {
    throw new EventStoreError("invalid_argument", `checkpointEvery.events must be an integer, got ${every.events}`);
  }
  return { signer, everyEvents: every.events, everyMs: every.seconds === undefined ? undefined : every.seconds * 1000 };
}

/** Checks four times per period whether a timed checkpoint is due; never overlaps itself. */
function startCheckpointTimer(
  policy: CheckpointPolicy | undefined,
  options: PostgresEventStoreOptions,
  tick: () => Promise<unknown>,
): { stop(): Promise<void> } {
  if (policy?.everyMs === undefined) return { stop: async () => {} };
  let running: Promise<unknown> | undefined;
  const interval = setInterval(
    () => {
      running ??= tick()
        .catch((error: unknown) => options.onBackgroundError?.(error))
        .finally(() => {
          running = undefined;
        });
    },
    Math.max(policy.everyMs / 4, 10),
  );
  interval.unref();
  return {
    stop: async () => {
      clearInterval(interval);
      await running;
    },
  };
}
