import { planAppend, type StoredEvent } from "../append-plan.ts";
import type { CheckpointSigner } from "../checkpoint.ts";
import { type CheckpointPolicy, type CheckpointState, planCheckpoint } from "../checkpoint-plan.ts";
import { EventStoreError } from "../errors.ts";
import { CHECKPOINT_STREAM, type EventStore, type RecordedEvent } from "../store.ts";
import { validateAppend, validateStream } from "../validate.ts";

export interface InMemoryEventStoreOptions {
  signer?: CheckpointSigner;
  /** With a signer: checkpoint once this many events follow the last checkpoint. */
  checkpointEveryEvents?: number;
  /** The store's clock; default the system clock. */
  now?: () => Date;
}

export interface InMemoryEventStore extends EventStore {
  /** Signs the head now unless it already is a checkpoint; needs a signer. */
  checkpoint(): Promise<RecordedEvent | undefined>;
}

/** The event store in process memory, for tests and demos; same semantics as the PostgreSQL adapter. */
export function createInMemoryEventStore(options: InMemoryEventStoreOptions = {}): InMemoryEventStore {
  const log: RecordedEvent[] = [];
  const byId = new Map<string, RecordedEvent>();
  const streams = new Map<string, RecordedEvent[]>();
  const waiters = new Set<() => void>();
  const now = options.now ?? (() => new Date());
  const policy: CheckpointPolicy | undefined = options.signer && {
    signer: options.signer,
    everyEvents: options.checkpointEveryEvents,
  };
  let closed = false;

  const open = () => {
    if (closed) throw new EventStoreError("closed", "the event store is closed");
  };
  const state = (stream: string): CheckpointState & { streamRevision: bigint | undefined } => ({
    head: log.at(-1),
    streamRevision: streams.get(stream)?.at(-1)?.revision,
    lastCheckpoint: streams.get(CHECKPOINT_STREAM)?.at(-1),
    now: now(),
  });
  const record = (records: readonly RecordedEvent[]) => {
    for (const event of records) {
      log.push(event);
      byId.set(event.eventId, event);
      streams.set(event.stream, [...(streams.get(event.stream) ?? []), event]);
    }
    if (records.length > 0) for (const wake of waiters) wake();
  };

  async function* readAll({ fromPosition = 1n, toPosition, signal }: Parameters<EventStore["readAll"]>[0] = {}) {
    open();
    for (let index = Number(fromPosition < 1n ? 1n : fromPosition) - 1; index < log.length; index++) {
      signal?.throwIfAborted();
      const event = log[index]!;
      if (toPosition !== undefined && event.position > toPosition) return;
      yield event;
    }
  }

  return {
    async append(stream, events, appendOptions = {}) {
      open();
      appendOptions.signal?.throwIfAborted();
      const expectedRevision = appendOptions.expectedRevision ?? "any";
      const valid = validateAppend(stream, events, expectedRevision);
      const stored = new Map<string, StoredEvent>();
      for (const { eventId } of valid) {
        const event = byId.get(eventId);
        if (event !== undefined) stored.set(eventId, event);
      }
      const plan = planAppend({
        stream,
        events: valid,
        expectedRevision,
        state: state(stream),
        stored,
        checkpoints: policy,
      });
      record(plan.records);
      return plan.result;
    },
    async *readStream(stream, { fromRevision = 0n, signal } = {}) {
      open();
      validateStream(stream);
      for (const event of streams.get(stream) ?? []) {
        signal?.throwIfAborted();
        if (event.revision >= fromRevision) yield event;
      }
    },
    readAll,
    async *subscribeAll({ fromPosition = 1n, signal }) {
      let next = fromPosition;
      while (!signal.aborted && !closed) {
        for await (const event of readAll({ fromPosition: next })) {
          yield event;
          next = event.position + 1n;
          if (signal.aborted || closed) return;
        }
        if (signal.aborted || closed) return;
        await new Promise<void>((resolve) => {
          const done = () => {
            waiters.delete(done);
            signal.removeEventListener("abort", done);
            resolve();
          };
          waiters.add(done);
          signal.addEventListener("abort", done, { once: true });
        });
      }
    },
    async head() {
      open();
      const last = log.at(-1);
      return last && { position: last.position, hash: last.hash };
    },
    async checkpoint() {
      open();
      if (policy === undefined) throw new EventStoreError("invalid_argument", "checkpoint() needs a signer");
      const checkpoint = planCheckpoint(state(CHECKPOINT_STREAM), policy, "now");
      if (checkpoint !== undefined) record([checkpoint]);
      return checkpoint;
    },
    async close() {
      closed = true;
      for (const wake of waiters) wake();
    },
  };
}
