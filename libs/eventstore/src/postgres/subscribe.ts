import { Client, escapeIdentifier } from "pg";
import type { ReadAllOptions, RecordedEvent, SubscribeAllOptions } from "../store.ts";
import type { StoreNames } from "./names.ts";
import { storageError } from "./storage-error.ts";

export interface SubscribeDeps {
  connectionString: string;
  names: StoreNames;
  readAll(options: ReadAllOptions): AsyncIterable<RecordedEvent>;
  /** Aborted when the store closes. */
  closed: AbortSignal;
  /** Re-read even without a notification this often: a safety net if the LISTEN connection drops. */
  pollIntervalMs: number;
}

/**
 * Catch-up then live: reads from `fromPosition` to the head, then waits for a NOTIFY (or the poll interval) and
 * reads on. LISTEN starts before the first read, so no append between reading and waiting is missed.
 */
export async function* subscribeAll(deps: SubscribeDeps, options: SubscribeAllOptions): AsyncGenerator<RecordedEvent> {
  const signal = AbortSignal.any([options.signal, deps.closed]);
  if (signal.aborted) return;
  const wake = createWake();
  const listener = await listen(deps, wake.notify);
  let next = options.fromPosition ?? 1n;
  try {
    while (!signal.aborted) {
      wake.clear();
      try {
        for await (const event of deps.readAll({ fromPosition: next })) {
          yield event;
          next = event.position + 1n;
          if (signal.aborted) return;
        }
      } catch (error) {
        if (signal.aborted) return;
        throw error;
      }
      await wake.wait(deps.pollIntervalMs, signal);
    }
  } finally {
    await listener.end().catch(() => {});
  }
}

async function listen(deps: SubscribeDeps, notify: () => void): Promise<Client> {
  const client = new Client({
    connectionString: deps.connectionString,
    application_name: "agentgate-eventstore-listen",
  });
  // A dropped LISTEN connection leaves the poll interval as the way to see new events.
  client.on("error", () => {});
  client.on("notification", notify);
  try {
    await client.connect();
    await client.query(`LISTEN ${escapeIdentifier(deps.names.channel)}`);
    return client;
  } catch (error) {
    await client.end().catch(() => {});
    throw storageError("subscribing to the log", error);
  }
}

/** A flag set by notifications, and a wait that ends on the flag, a timeout or an abort. */
function createWake() {
  let pending = false;
  let wakeUp: (() => void) | undefined;
  return {
    notify() {
      pending = true;
      wakeUp?.();
    },
    clear() {
      pending = false;
    },
    wait(ms: number, signal: AbortSignal): Promise<void> {
      if (pending || signal.aborted) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          wakeUp = undefined;
          resolve();
        };
        const timer = setTimeout(done, ms);
        signal.addEventListener("abort", done, { once: true });
        wakeUp = done;
      });
    },
  };
}
