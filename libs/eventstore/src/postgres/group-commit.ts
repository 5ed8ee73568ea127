import type { Pool } from "pg";
import { planAppend } from "../append-plan.ts";
import type { CheckpointPolicy } from "../checkpoint-plan.ts";
import {
  type AppendResult,
  CHECKPOINT_STREAM,
  type EventToAppend,
  type ExpectedRevision,
  type RecordedEvent,
} from "../store.ts";
import { inAppendTransaction, insertRecords } from "./append.ts";
import type { LockedLog } from "./log-state.ts";
import type { StoreNames } from "./names.ts";

export interface QueuedAppend {
  stream: string;
  /** Validated. */
  events: readonly EventToAppend[];
  expectedRevision: ExpectedRevision;
  /** Honoured until the append is planned into a transaction. */
  signal: AbortSignal | undefined;
}

export interface AppendWriter {
  append(request: QueuedAppend): Promise<AppendResult>;
  /** Resolves once every queued append has settled. */
  drain(): Promise<void>;
}

type Outcome = { ok: true; result: AppendResult } | { ok: false; error: unknown };

interface Pending {
  request: QueuedAppend;
  settle(outcome: Outcome): void;
}

// A group's bounds: enough to amortise the transaction, small enough to keep one INSERT's memory modest.
const MAX_GROUP_APPENDS = 500;
const MAX_GROUP_BYTES = 16 * 1024 * 1024;

/**
 * Group commit: one writer loop per store. Appends that arrive while a transaction runs wait and go together into
 * the next one, each planned in arrival order against the state the ones before it leave; each succeeds or fails
 * on its own (a failed expectation rejects only that append). The lock and round trips are paid once per group, so
 * concurrent appenders in one process add throughput instead of queueing on the lock.
 */
export function createAppendWriter(
  pool: Pool,
  names: StoreNames,
  checkpoints: CheckpointPolicy | undefined,
): AppendWriter {
  const queue: Pending[] = [];
  let running: Promise<void> | undefined;

  const run = async () => {
    try {
      while (queue.length > 0) await commitGroup(pool, names, checkpoints, takeGroup(queue));
    } finally {
      running = undefined;
    }
  };

  return {
    append(request) {
      return new Promise((resolve, reject) => {
        queue.push({ request, settle: (outcome) => (outcome.ok ? resolve(outcome.result) : reject(outcome.error)) });
        running ??= run();
      });
    },
    drain: async () => {
      await running;
    },
  };
}

function takeGroup(queue: Pending[]): Pending[] {
  let bytes = 0;
  let count = 0;
  while (count < queue.length && count < MAX_GROUP_APPENDS) {
    const size = queue[count]!.request.events.reduce((sum, event) => sum + event.data.byteLength, 0);
    if (count > 0 && bytes + size > MAX_GROUP_BYTES) break;
    bytes += size;
    count += 1;
  }
  return queue.splice(0, count);
}

async function commitGroup(
  pool: Pool,
  names: StoreNames,
  checkpoints: CheckpointPolicy | undefined,
  group: Pending[],
): Promise<void> {
  const live = group.filter(({ request, settle }) => {
    if (request.signal?.aborted) settle({ ok: false, error: request.signal.reason });
    return !request.signal?.aborted;
  });
  if (live.length === 0) return;
  const requests = live.map((pending) => pending.request);
  const lookup = {
    streams: [...new Set(requests.map((request) => request.stream))],
    eventIds: [...new Set(requests.flatMap((request) => request.events.map((event) => event.eventId)))],
  };
  const doing =
    live.length === 1 ? `appending to ${requests[0]!.stream}` : `appending to ${lookup.streams.length} streams`;
  let outcomes: Outcome[];
  try {
    outcomes = await inAppendTransaction(pool, names, lookup, doing, async (client, log) => {
      const plan = planGroup(requests, log, checkpoints);
      await insertRecords(client, names, plan.records);
      return plan.outcomes;
    });
  } catch (error) {
    for (const pending of live) pending.settle({ ok: false, error });
    return;
  }
  live.forEach((pending, index) => {
    pending.settle(outcomes[index]!);
  });
}

/** Plans each append after the ones before it in the group, as if each had its own transaction. */
function planGroup(
  requests: readonly QueuedAppend[],
  log: LockedLog,
  checkpoints: CheckpointPolicy | undefined,
): { records: RecordedEvent[]; outcomes: Outcome[] } {
  let { head, lastCheckpoint } = log;
  const { revisions, stored, now } = log;
  const records: RecordedEvent[] = [];
  const outcomes = requests.map((request): Outcome => {
    try {
      const state = { head, lastCheckpoint, now, streamRevision: revisions.get(request.stream) };
      const plan = planAppend({ ...request, state, stored, checkpoints });
      for (const record of plan.records) {
        records.push(record);
        head = record;
        revisions.set(record.stream, record.revision);
        stored.set(record.eventId, record);
        if (record.stream === CHECKPOINT_STREAM) lastCheckpoint = record;
      }
      return { ok: true, result: plan.result };
    } catch (error) {
      return { ok: false, error };
    }
  });
  return { records, outcomes };
}
