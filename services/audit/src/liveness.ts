// Sessions of a worker that died end in the audit record too. A proxy worker sends a WorkerHeartbeat every interval
// while it runs; its sessions end with their own SessionEnded when they close or the worker shuts down. A worker that
// is killed (or loses its host) ends nothing: its heartbeats stop. This sweeper finds the open sessions of a worker
// that has been silent for `missedBeats` intervals, or whose worker id has since started again, and appends a
// SessionEnded (SESSION_END_REASON_WORKER_LOST) to each session's stream in the event store, so the loss is part of
// the tamper-evident record and every read model built from it shows it.
//
// It judges only when the record is complete: nothing left unstored on the bus (a backlog would make a live worker
// look silent) and the read models caught up with the store; and silence counts only over a time in which it saw
// the bus working (after an outage of the bus every worker has been silent). The event written for a loss is the same bytes
// whichever audit instance writes it (its id and time derive from the session and the last heartbeat), so instances
// that race store it once.
import { createHash } from "node:crypto";
import { SessionEndedSchema, SessionEndReason } from "@agentgate/events";
import { type EventStore, EventStoreError } from "@agentgate/eventstore";
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import pg from "pg";
import { type Logger, pino } from "pino";
import type { Projector } from "./projections/projector.ts";
import { DEFAULT_READ_SCHEMA, readModelNames } from "./projections/schema.ts";

export interface LivenessOptions {
  /** The read models' database (the sessions and workers tables). */
  connectionString: string;
  schema?: string;
  eventStore: EventStore;
  projector: Pick<Projector, "catchUp">;
  /** Messages on the bus not stored yet (the ingester's backlog). */
  backlog: () => Promise<number>;
  /** How often to look; default 5 s. */
  intervalMs?: number;
  /** Heartbeat intervals of silence after which a worker counts as lost; default 3. */
  missedBeats?: number;
  logger?: Logger;
}

export interface LivenessSweeper {
  start(): void;
  stop(): Promise<void>;
  /** One look: records the sessions of lost workers; returns how many it recorded (0 when it could not judge). */
  sweep(now?: Date): Promise<number>;
}

interface LostSession {
  session_id: string;
  principal_subject: string | null;
  principal_groups: string[];
  principal_issuer: string | null;
  client_id: string | null;
  target: string | null;
  worker_id: string;
  last_heartbeat: Date;
  interval_ms: number;
  restarted_at: Date | null;
}

export function createLivenessSweeper(options: LivenessOptions): LivenessSweeper {
  const logger = options.logger ?? pino({ level: "silent" });
  const names = readModelNames(options.schema ?? DEFAULT_READ_SCHEMA);
  const intervalMs = options.intervalMs ?? 5000;
  const missedBeats = options.missedBeats ?? 3;
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: 1,
    application_name: "agentgate-audit-liveness",
  });
  pool.on("error", () => {});
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> = Promise.resolve();
  let stopped = false;
  // Since when the bus has answered every look: silence is only judged over a time the bus was seen working (after
  // a bus outage every worker is silent for a while; after a restart of this service nothing has been seen yet).
  let healthySince: Date | undefined;

  const sweep = async (now = new Date()): Promise<number> => {
    let backlog: number;
    try {
      backlog = await options.backlog();
    } catch (error) {
      healthySince = undefined;
      throw error;
    }
    healthySince ??= now;
    if (backlog > 0) {
      logger.debug({ backlog }, "audit events still on the bus: liveness not judged this time");
      return 0;
    }
    await options.projector.catchUp();
    // A worker is lost when silent for missedBeats intervals; a session is also lost when its worker id has started
    // again since the session began (the run that served it ended without ending it).
    const { rows } = await pool.query<LostSession>(
      `SELECT s.session_id, s.principal_subject, s.principal_groups, s.principal_issuer, s.client_id, s.target,
              s.worker_id, w.last_heartbeat, w.interval_ms,
              CASE WHEN w.started_at > s.started_at THEN w.started_at END AS restarted_at
         FROM ${names.sessions} s JOIN ${names.workers} w ON w.worker_id = s.worker_id
        WHERE s.ended_at IS NULL
          AND ((w.last_heartbeat < $1::timestamptz - make_interval(secs => w.interval_ms * $2 / 1000.0)
                AND $3::timestamptz <= $1::timestamptz - make_interval(secs => w.interval_ms * $2 / 1000.0))
               OR w.started_at > s.started_at)`,
      [now, missedBeats, healthySince],
    );
    let recorded = 0;
    for (const row of rows) {
      const event = lostEvent(row, missedBeats);
      try {
        await options.eventStore.append(`session-${row.session_id}`, [event], { expectedRevision: "any" });
        recorded++;
        logger.warn(
          { session: row.session_id, worker: row.worker_id, lastHeartbeat: row.last_heartbeat },
          "session ended: its worker was lost",
        );
      } catch (error) {
        // Another audit instance recorded the same loss first (same id, same bytes: a no-op; else a conflict).
        if (error instanceof EventStoreError && error.code === "event_id_conflict") continue;
        throw error;
      }
    }
    if (recorded > 0) await options.projector.catchUp();
    return recorded;
  };

  const tick = () => {
    running = sweep()
      .catch((error: unknown) => logger.warn({ err: error }, "worker liveness sweep failed; the next one retries"))
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, intervalMs).unref();
      });
  };

  return {
    start() {
      if (timer !== undefined || stopped) return;
      timer = setTimeout(tick, intervalMs).unref();
    },
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
      await pool.end();
    },
    sweep,
  };
}

/** The SessionEnded recording a loss: its id and time derive from the session and what showed the loss. */
function lostEvent(row: LostSession, missedBeats: number) {
  const restarted = row.restarted_at !== null;
  const judgedAt = restarted
    ? row.restarted_at!
    : new Date(row.last_heartbeat.getTime() + row.interval_ms * missedBeats);
  const eventId = uuidFrom(`worker_lost:${row.session_id}:${row.worker_id}:${judgedAt.toISOString()}`);
  const detail = restarted
    ? `worker ${row.worker_id} started again at ${row.restarted_at!.toISOString()} with the session open`
    : `worker ${row.worker_id} sent no heartbeat after ${row.last_heartbeat.toISOString()}`;
  const data = toBinary(
    SessionEndedSchema,
    create(SessionEndedSchema, {
      meta: {
        eventId,
        occurredAt: timestampFromDate(judgedAt),
        principal:
          row.principal_subject === null
            ? undefined
            : {
                subject: row.principal_subject,
                groups: row.principal_groups,
                issuer: row.principal_issuer ?? "",
                clientId: row.client_id ?? "",
              },
        target: row.target ?? "",
        sessionId: row.session_id,
        workerId: row.worker_id,
      },
      reason: SessionEndReason.WORKER_LOST,
      detail,
    }),
  );
  return { eventId, type: SessionEndedSchema.typeName, data, occurredAt: judgedAt };
}

/** A UUID (version 8, RFC 9562) from the SHA-256 of `name`: the same name, the same id. */
function uuidFrom(name: string): string {
  const bytes = createHash("sha256").update(name).digest().subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x80;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const h = bytes.toString("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
