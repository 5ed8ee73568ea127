import { strict as assert } from "node:assert";
import { randomBytes, randomUUID } from "node:crypto";
import { describe, it } from "node:test";
import { GENESIS_HASH } from "../chain.ts";
import { EventIdConflictError, EventStoreError, WrongExpectedRevisionError } from "../errors.ts";
import type { EventStore, EventToAppend, RecordedEvent } from "../store.ts";
import { verifyStore } from "../verify.ts";

/** Makes a new, empty store for one test; the suite closes it. */
export type EventStoreFactory = () => Promise<EventStore>;

/** A test event; `n` shows up in its data so reads can be checked by content. */
export function testEvent(n = 0, overrides: Partial<EventToAppend> = {}): EventToAppend {
  return {
    eventId: randomUUID(),
    type: "agentgate.v1.ContractTested",
    data: new TextEncoder().encode(`event ${n}`),
    occurredAt: new Date(Date.UTC(2025, 0, 1, 12, 0, 0, n % 1000)),
    ...overrides,
  };
}

export async function collect<T>(iterable: AsyncIterable<T>, limit = Number.POSITIVE_INFINITY): Promise<T[]> {
  const items: T[] = [];
  if (limit <= 0) return items;
  for await (const item of iterable) {
    items.push(item);
    if (items.length >= limit) break;
  }
  return items;
}

function sameEvent(recorded: RecordedEvent, appended: EventToAppend): void {
  assert.equal(recorded.eventId, appended.eventId.toLowerCase());
  assert.equal(recorded.type, appended.type);
  assert.deepEqual(Buffer.from(recorded.data), Buffer.from(appended.data));
  assert.equal(recorded.occurredAt.getTime(), appended.occurredAt.getTime());
}

const TIMEOUT = { timeout: 60_000 };

/**
 * Registers the node:test tests every EventStore adapter must pass. `factory` gives each test a fresh, empty store
 * without checkpoints; the test closes it.
 */
export function eventStoreContract(name: string, factory: EventStoreFactory): void {
  const test = (title: string, body: (store: EventStore) => Promise<void>) =>
    it(title, TIMEOUT, async () => {
      const store = await factory();
      try {
        await body(store);
      } finally {
        await store.close();
      }
    });

  describe(`EventStore contract: ${name}`, () => {
    describe("append and read", () => {
      test("appends to a new stream and reads it back in order, revisions from 0", async (store) => {
        const events = [testEvent(0), testEvent(1), testEvent(2)];
        const result = await store.append("session-a", events);
        assert.deepEqual(result, { nextRevision: 2n, position: 3n });
        const read = await collect(store.readStream("session-a"));
        assert.deepEqual(
          read.map((event) => [event.stream, event.revision, event.position]),
          [
            ["session-a", 0n, 1n],
            ["session-a", 1n, 2n],
            ["session-a", 2n, 3n],
          ],
        );
        read.forEach((event, index) => {
          sameEvent(event, events[index]!);
        });
      });

      test("reads a stream from a revision; an unknown stream reads as empty", async (store) => {
        await store.append("session-a", [testEvent(0), testEvent(1), testEvent(2)]);
        const tail = await collect(store.readStream("session-a", { fromRevision: 1n }));
        assert.deepEqual(
          tail.map((event) => event.revision),
          [1n, 2n],
        );
        assert.deepEqual(await collect(store.readStream("session-none")), []);
      });

      test("keeps streams apart while global positions run across them", async (store) => {
        await store.append("session-a", [testEvent(0)]);
        await store.append("session-b", [testEvent(1), testEvent(2)]);
        const result = await store.append("session-a", [testEvent(3)]);
        assert.deepEqual(result, { nextRevision: 1n, position: 4n });
        const a = await collect(store.readStream("session-a"));
        assert.deepEqual(
          a.map((event) => [event.revision, event.position]),
          [
            [0n, 1n],
            [1n, 4n],
          ],
        );
        const b = await collect(store.readStream("session-b"));
        assert.deepEqual(
          b.map((event) => [event.revision, event.position]),
          [
            [0n, 2n],
            [1n, 3n],
          ],
        );
      });

      test("stores large data byte for byte", async (store) => {
        const data = randomBytes(8 * 1024 * 1024);
        const event = testEvent(0, { data });
        await store.append("session-large", [event, testEvent(1)]);
        const [read] = await collect(store.readStream("session-large"), 1);
        assert.ok(read);
        assert.equal(read.data.byteLength, data.length);
        assert.ok(Buffer.from(read.data).equals(data));
        assert.equal((await verifyStore(store)).ok, true);
      });

      test("an empty batch checks the expectation and writes nothing", async (store) => {
        assert.deepEqual(await store.append("session-a", [], { expectedRevision: "no_stream" }), {
          nextRevision: -1n,
          position: 0n,
        });
        await store.append("session-a", [testEvent(0)]);
        await assert.rejects(
          store.append("session-a", [], { expectedRevision: "no_stream" }),
          WrongExpectedRevisionError,
        );
        assert.deepEqual(await store.append("session-a", [], { expectedRevision: 0n }), {
          nextRevision: 0n,
          position: 1n,
        });
        assert.equal((await collect(store.readAll())).length, 1);
      });

      test("refuses reserved streams, bad event ids and an aborted signal, writing nothing", async (store) => {
        await assert.rejects(store.append("$checkpoints", [testEvent(0)]), { code: "invalid_argument" });
        await assert.rejects(store.append("session-a", [testEvent(0, { eventId: "not-a-uuid" })]), {
          code: "invalid_argument",
        });
        await assert.rejects(store.append("", [testEvent(0)]), EventStoreError);
        const aborted = AbortSignal.abort();
        await assert.rejects(store.append("session-a", [testEvent(0)], { signal: aborted }), { name: "AbortError" });
        assert.equal(await store.head(), undefined);
      });
    });

    describe("expected revision", () => {
      test('"no_stream" only for a new stream, "exists" only for an existing one', async (store) => {
        await store.append("session-a", [testEvent(0)], { expectedRevision: "no_stream" });
        await assert.rejects(
          store.append("session-a", [testEvent(1)], { expectedRevision: "no_stream" }),
          (error: unknown) =>
            error instanceof WrongExpectedRevisionError &&
            error.code === "wrong_expected_revision" &&
            error.actual === 0n &&
            error.stream === "session-a",
        );
        await assert.rejects(
          store.append("session-b", [testEvent(2)], { expectedRevision: "exists" }),
          (error: unknown) => error instanceof WrongExpectedRevisionError && error.actual === undefined,
        );
        await store.append("session-a", [testEvent(3)], { expectedRevision: "exists" });
        assert.equal((await collect(store.readStream("session-a"))).length, 2);
      });

      test("an exact revision must be the stream's last; a failed expectation writes nothing", async (store) => {
        await store.append("session-a", [testEvent(0), testEvent(1)]);
        await assert.rejects(
          store.append("session-a", [testEvent(2)], { expectedRevision: 0n }),
          WrongExpectedRevisionError,
        );
        await assert.rejects(
          store.append("session-a", [testEvent(2)], { expectedRevision: 2n }),
          WrongExpectedRevisionError,
        );
        await assert.rejects(
          store.append("session-b", [testEvent(2)], { expectedRevision: 0n }),
          WrongExpectedRevisionError,
        );
        assert.equal((await collect(store.readAll())).length, 2);
        assert.deepEqual(await store.append("session-a", [testEvent(2)], { expectedRevision: 1n }), {
          nextRevision: 2n,
          position: 3n,
        });
        await store.append("session-a", [testEvent(3)], { expectedRevision: "any" });
        assert.equal((await collect(store.readStream("session-a"))).length, 4);
      });

      test("of concurrent appenders expecting the same revision, exactly one wins", async (store) => {
        await store.append("approval-1", [testEvent(0)]);
        const attempts = Array.from({ length: 10 }, (_, n) =>
          store.append("approval-1", [testEvent(n + 1)], { expectedRevision: 0n }),
        );
        const outcomes = await Promise.allSettled(attempts);
        const won = outcomes.filter((outcome) => outcome.status === "fulfilled");
        const lost = outcomes.filter((outcome) => outcome.status === "rejected");
        assert.equal(won.length, 1);
        for (const outcome of lost)
          assert.ok(outcome.reason instanceof WrongExpectedRevisionError, String(outcome.reason));
        assert.deepEqual(
          (await collect(store.readStream("approval-1"))).map((event) => event.revision),
          [0n, 1n],
        );
      });

      test('of concurrent creators expecting "no_stream", exactly one wins', async (store) => {
        const outcomes = await Promise.allSettled(
          Array.from({ length: 10 }, (_, n) =>
            store.append("grant-1", [testEvent(n)], { expectedRevision: "no_stream" }),
          ),
        );
        assert.equal(outcomes.filter((outcome) => outcome.status === "fulfilled").length, 1);
        assert.equal((await collect(store.readAll())).length, 1);
      });
    });

    describe("idempotency by event id", () => {
      test("re-appending the same events succeeds with the original result and stores nothing twice", async (store) => {
        const events = [testEvent(0), testEvent(1)];
        const first = await store.append("session-a", events, { expectedRevision: "no_stream" });
        await store.append("session-b", [testEvent(2)]);
        // The retry carries the original expectation, which is stale now: it still succeeds.
        const retry = await store.append("session-a", events, { expectedRevision: "no_stream" });
        assert.deepEqual(retry, first);
        const upper = events.map((event) => ({ ...event, eventId: event.eventId.toUpperCase() }));
        assert.deepEqual(await store.append("session-a", upper), first);
        assert.equal((await collect(store.readAll())).length, 3);
      });

      test("a batch mixing stored and new events appends only the new ones", async (store) => {
        const [a, b, c] = [testEvent(0), testEvent(1), testEvent(2)];
        await store.append("session-a", [a, b]);
        const result = await store.append("session-a", [b, c, c], { expectedRevision: 1n });
        assert.deepEqual(result, { nextRevision: 2n, position: 3n });
        assert.deepEqual(
          (await collect(store.readStream("session-a"))).map((event) => event.eventId),
          [a.eventId, b.eventId, c.eventId],
        );
      });

      test("the same event id with different content is refused, naming the id", async (store) => {
        const event = testEvent(0);
        await store.append("session-a", [event]);
        const changed: Partial<EventToAppend>[] = [
          { data: new TextEncoder().encode("changed") },
          { type: "agentgate.v1.Other" },
          { occurredAt: new Date(event.occurredAt.getTime() + 1) },
        ];
        for (const change of changed) {
          await assert.rejects(
            store.append("session-a", [{ ...event, ...change }]),
            (error: unknown) =>
              error instanceof EventIdConflictError &&
              error.code === "event_id_conflict" &&
              error.eventId === event.eventId,
          );
        }
        await assert.rejects(store.append("session-b", [event]), EventIdConflictError);
        await assert.rejects(store.append("session-c", [testEvent(1), { ...testEvent(2), eventId: event.eventId }]), {
          code: "event_id_conflict",
        });
        const twice = testEvent(3);
        await assert.rejects(store.append("session-c", [twice, { ...twice, type: "x.Other" }]), EventIdConflictError);
        assert.equal((await collect(store.readAll())).length, 1);
      });
    });

    describe("the global log", () => {
      test("readAll yields positions 1..n without gaps, bounded by fromPosition and toPosition", async (store) => {
        for (let n = 0; n < 30; n++) await store.append(`session-${n % 4}`, [testEvent(n), testEvent(n + 100)]);
        const all = await collect(store.readAll());
        assert.deepEqual(
          all.map((event) => event.position),
          Array.from({ length: 60 }, (_, index) => BigInt(index + 1)),
        );
        const some = await collect(store.readAll({ fromPosition: 10n, toPosition: 19n }));
        assert.deepEqual(
          some.map((event) => event.position),
          Array.from({ length: 10 }, (_, index) => BigInt(index + 10)),
        );
        assert.deepEqual(await collect(store.readAll({ fromPosition: 61n })), []);
      });

      test("links every event to the one before it, so the chain verifies", async (store) => {
        await store.append("session-a", [testEvent(0), testEvent(1)]);
        await store.append("session-b", [testEvent(2)]);
        const all = await collect(store.readAll());
        assert.equal(all[0]?.prevHash, GENESIS_HASH);
        for (let index = 1; index < all.length; index++) assert.equal(all[index]!.prevHash, all[index - 1]!.hash);
        for (let index = 1; index < all.length; index++) {
          assert.ok(all[index]!.recordedAt.getTime() >= all[index - 1]!.recordedAt.getTime());
        }
        const verified = await verifyStore(store);
        assert.deepEqual(verified, {
          ok: true,
          head: { position: 3n, hash: all[2]!.hash },
          events: 3,
          checkpoints: 0,
          signatures: "unchecked",
        });
      });

      test("concurrent appenders to many streams get gapless positions and a linear chain", async (store) => {
        await Promise.all(
          Array.from({ length: 10 }, async (_, writer) => {
            for (let n = 0; n < 10; n++) await store.append(`session-${writer}`, [testEvent(n), testEvent(n + 1)]);
          }),
        );
        const all = await collect(store.readAll());
        assert.deepEqual(
          all.map((event) => event.position),
          Array.from({ length: 200 }, (_, index) => BigInt(index + 1)),
        );
        assert.equal((await verifyStore(store)).ok, true);
      });

      test("head is undefined on an empty store, then the last position and hash", async (store) => {
        assert.equal(await store.head(), undefined);
        await store.append("session-a", [testEvent(0), testEvent(1)]);
        const all = await collect(store.readAll());
        assert.deepEqual(await store.head(), { position: 2n, hash: all[1]!.hash });
      });
    });

    describe("subscribeAll", () => {
      test("catches up, follows live appends, and ends when the signal aborts", async (store) => {
        await store.append("session-a", [testEvent(0), testEvent(1), testEvent(2)]);
        const controller = new AbortController();
        const seen: bigint[] = [];
        const done = (async () => {
          for await (const event of store.subscribeAll({ signal: controller.signal })) {
            seen.push(event.position);
            if (seen.length === 3) void store.append("session-b", [testEvent(3), testEvent(4)]);
            if (seen.length === 5) controller.abort();
          }
        })();
        await done;
        assert.deepEqual(seen, [1n, 2n, 3n, 4n, 5n]);
      });

      test("waits for new events, starts at fromPosition, and ends on abort while idle", async (store) => {
        await store.append("session-a", [testEvent(0), testEvent(1), testEvent(2)]);
        const controller = new AbortController();
        const seen: bigint[] = [];
        let sawFour!: () => void;
        const four = new Promise<void>((resolve) => {
          sawFour = resolve;
        });
        const done = (async () => {
          for await (const event of store.subscribeAll({ fromPosition: 3n, signal: controller.signal })) {
            seen.push(event.position);
            if (event.position === 4n) sawFour();
          }
        })();
        await new Promise((resolve) => setTimeout(resolve, 200));
        assert.deepEqual(seen, [3n]);
        await store.append("session-a", [testEvent(3)]);
        await four;
        controller.abort();
        await done;
        assert.deepEqual(seen, [3n, 4n]);
      });
    });
  });
}
