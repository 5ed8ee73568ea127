import { type AuditEvent, BusError, decodeEvent } from "@agentgate/bus";
import type { EventStore, RecordedEvent } from "@agentgate/eventstore";
import pg from "pg";
import { type Logger, pino } from "pino";
import { type BackoffOptions, backoffDelay, sleep } from "../backoff.ts";
import { batches } from "../batches.ts";
import { APPROVAL_STREAM_PREFIX, applyApprovalEvent } from "./approvals.ts";
import {
  DEFAULT_READ_SCHEMA,
  migrateReadModel,
  READ_MODEL_PROJECTION,
  type ReadModelNames,
  readModelNames,
  resetReadModel,
} from "./schema.ts";
import { sessionEnded, sessionStarted, workerHeartbeat } from "./sessions.ts";
import { statementCompleted, statementReceived } from "./statements.ts";

export interface ProjectorOptions {
  /** The PostgreSQL database of the read models (may be the event store's). */
  connectionString: string;
  /** Default "agentgate_read". */
  schema?: string;
  eventStore: EventStore;
  /** Events applied per transaction at most; default 500. */
  batchSize?: number;
  backoff?: BackoffOptions;
  logger?: Logger;
}

export interface Projector {
  readonly schema: string;
  /** Creates the read model tables and checkpoint when missing (the other methods do it on first use). */
  migrate(): Promise<void>;
  /** Migrates, then follows the store from the checkpoint in the background (retrying while a database fails). */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Projects up to the store's head as of now (itself, or by waiting for the running loop); returns that position. */
  catchUp(): Promise<bigint>;
  /** Drops the read models and replays the whole log into them; returns the position reached. */
  rebuild(): Promise<bigint>;
  /** The checkpoint: every event up to it is in the read models. */
  position(): Promise<bigint>;
}

/**
 * The read models (sessions, statements) in PostgreSQL, built from the event store's global log. Each batch of
 * events and the checkpoint move in one transaction, so a crash never applies an event twice or skips one.
 * Workers' heartbeats go to the workers table; a worker lost is recorded as SessionEnded events by the audit
 * service's liveness sweeper (sweeper.ts), which the sessions table then shows like any other end.
 */
export function createProjector(options: ProjectorOptions): Projector {
  const names = readModelNames(options.schema ?? DEFAULT_READ_SCHEMA);
  const logger = options.logger ?? pino({ level: "silent" });
  const batchSize = options.batchSize ?? 500;
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: 4,
    application_name: "agentgate-audit-projector",
  });
  pool.on("error", () => {});
  let loop: { stop: AbortController; done: Promise<void> } | undefined;
  let projected = -1n;
  const waiters = new Set<{ position: bigint; resolve: () => void }>();

  const advanced = (position: bigint) => {
    projected = position;
    for (const waiter of waiters) {
      if (waiter.position <= position) {
        waiters.delete(waiter);
        waiter.resolve();
      }
    }
  };

  const withClient = async <T>(work: (client: pg.PoolClient) => Promise<T>): Promise<T> => {
    const client = await pool.connect();
    let broken: Error | undefined;
    // A connection lost while checked out must not become an uncaught 'error' event.
    const onError = (error: Error) => {
      broken = error;
    };
    client.on("error", onError);
    try {
      return await work(client);
    } finally {
      client.off("error", onError);
      client.release(broken);
    }
  };

  const checkpoint = async (): Promise<bigint> => {
    const { rows } = await pool.query<{ position: string }>(
      `SELECT position FROM ${names.checkpoints} WHERE name = $1`,
      [READ_MODEL_PROJECTION],
    );
    return BigInt(rows[0]?.position ?? 0);
  };

  /** Applies a run of consecutive events; "resync" when the checkpoint is not where this run starts. */
  const applyBatch = (events: RecordedEvent[]) =>
    withClient(async (client): Promise<"ok" | "resync"> => {
      const first = events[0]!.position;
      const last = events.at(-1)!.position;
      await client.query("BEGIN");
      try {
        const { rows } = await client.query<{ position: string }>(
          `SELECT position FROM ${names.checkpoints} WHERE name = $1 FOR UPDATE`,
          [READ_MODEL_PROJECTION],
        );
        const at = BigInt(rows[0]?.position ?? -1);
        // Rebuilt, or moved on by another projector meanwhile: read again from the checkpoint.
        if (at < first - 1n || at > last) {
          await client.query("ROLLBACK");
          return "resync";
        }
        for (const event of events) if (event.position > at) await apply(client, names, event, logger);
        await client.query(`UPDATE ${names.checkpoints} SET position = $2, updated_at = now() WHERE name = $1`, [
          READ_MODEL_PROJECTION,
          last.toString(),
        ]);
        await client.query("COMMIT");
      } catch (error) {
        await client.query("ROLLBACK").catch(() => undefined);
        throw error;
      }
      advanced(last);
      return "ok";
    });

  const project = async (source: AsyncIterable<RecordedEvent>): Promise<"done" | "resync"> => {
    for await (const batch of batches(source, batchSize)) {
      if ((await applyBatch(batch)) === "resync") return "resync";
    }
    return "done";
  };

  const follow = async (signal: AbortSignal) => {
    for (let failures = 0; !signal.aborted; ) {
      try {
        const at = await checkpoint();
        advanced(at);
        await project(options.eventStore.subscribeAll({ fromPosition: at + 1n, signal }));
        failures = 0;
      } catch (error) {
        if (signal.aborted) return;
        logger.warn({ err: error, failures }, "projecting the audit log failed; retrying");
        await sleep(backoffDelay(failures++, options.backoff), signal);
      }
    }
  };

  const startLoop = () => {
    const stop = new AbortController();
    loop = { stop, done: follow(stop.signal) };
  };
  const stopLoop = async () => {
    if (loop === undefined) return;
    loop.stop.abort();
    await loop.done;
    loop = undefined;
  };

  const catchUp = async (): Promise<bigint> => {
    await ensureMigrated();
    const target = (await options.eventStore.head())?.position ?? 0n;
    if (loop !== undefined) {
      if (projected < target) await new Promise<void>((resolve) => waiters.add({ position: target, resolve }));
      return target;
    }
    for (;;) {
      const at = await checkpoint();
      if (at >= target) return at;
      const result = await project(options.eventStore.readAll({ fromPosition: at + 1n, toPosition: target }));
      if (result === "done") return target;
    }
  };

  let migrated: Promise<void> | undefined;
  const migrate = () => {
    migrated = withClient((client) => migrateReadModel(client, names));
    migrated.catch(() => {
      migrated = undefined;
    });
    return migrated;
  };
  const ensureMigrated = () => migrated ?? migrate();

  return {
    schema: names.schema,
    migrate,
    async start() {
      if (loop !== undefined) return;
      await ensureMigrated();
      startLoop();
    },
    async stop() {
      await stopLoop();
      for (const waiter of waiters) waiter.resolve();
      waiters.clear();
      await pool.end();
    },
    catchUp,
    async rebuild() {
      const wasRunning = loop !== undefined;
      await stopLoop();
      await withClient((client) => resetReadModel(client, names));
      projected = -1n;
      logger.info({ schema: names.schema }, "read models dropped; replaying the audit log");
      if (wasRunning) startLoop();
      return catchUp();
    },
    async position() {
      await ensureMigrated();
      return checkpoint();
    },
  };
}

async function apply(client: pg.ClientBase, names: ReadModelNames, event: RecordedEvent, logger: Logger) {
  if (event.stream.startsWith(APPROVAL_STREAM_PREFIX)) return applyApprovalEvent(client, names, event);
  if (event.stream.startsWith("worker-") && event.type === "agentgate.v1.WorkerHeartbeat") {
    try {
      const heartbeat = decodeEvent(event.type, event.data);
      if (heartbeat.$typeName === "agentgate.v1.WorkerHeartbeat") {
        await workerHeartbeat(client, names, heartbeat, event.occurredAt);
      }
    } catch (error) {
      if (!(error instanceof BusError)) throw error;
      logger.warn({ position: event.position, reason: error.message }, "event skipped by the read models");
    }
    return;
  }
  if (!event.stream.startsWith("session-")) return;
  const sessionId = event.stream.slice("session-".length);
  let decoded: AuditEvent;
  try {
    decoded = decodeEvent(event.type, event.data);
  } catch (error) {
    // The ingester stores only decodable events of known types; a newer type is skipped, not a reason to stop.
    if (!(error instanceof BusError)) throw error;
    logger.warn(
      { position: event.position, type: event.type, reason: error.message },
      "event skipped by the read models",
    );
    return;
  }
  const args = [client, names, sessionId] as const;
  switch (decoded.$typeName) {
    case "agentgate.v1.SessionStarted":
      return sessionStarted(...args, decoded, event.occurredAt, event.position);
    case "agentgate.v1.SessionEnded":
      return sessionEnded(...args, decoded, event.occurredAt, event.position);
    case "agentgate.v1.StatementReceived":
      return statementReceived(...args, decoded, event.occurredAt, event.position);
    case "agentgate.v1.StatementCompleted":
      return statementCompleted(...args, decoded, event.occurredAt, event.position);
    default:
      // SignInRefused and PolicyRevisionActivated have no read model yet.
      return;
  }
}
