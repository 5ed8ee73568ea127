import { strict as assert } from "node:assert";
import { after, describe, it } from "node:test";
import { collect, eventStoreContract, testEvent } from "../testing/contract.ts";
import { verifyStore } from "../verify.ts";
import { createPostgresEventStore } from "./event-store.ts";
import { type StoreDatabase, storeDatabase } from "./testing.ts";

let database: Promise<StoreDatabase> | undefined;
const shared = () => {
  database ??= storeDatabase();
  return database;
};
after(async () => {
  if (database !== undefined) await (await database).drop();
});

eventStoreContract("PostgreSQL, connected as the writer role", async () => (await shared()).openStore());

describe("PostgreSQL across store instances", () => {
  it("keeps positions gapless when two instances (two processes' worth) append at once", {
    timeout: 60_000,
  }, async () => {
    const first = await (await shared()).openStore();
    const second = createPostgresEventStore({ connectionString: (await shared()).writerUrl, schema: first.schema });
    try {
      await Promise.all(
        [first, second].flatMap((store, instance) =>
          Array.from({ length: 5 }, async (_, writer) => {
            for (let n = 0; n < 20; n++) await store.append(`session-${instance}-${writer}`, [testEvent(n)]);
          }),
        ),
      );
      const all = await collect(first.readAll());
      assert.deepEqual(
        all.map((event) => event.position),
        Array.from({ length: 200 }, (_, index) => BigInt(index + 1)),
      );
      assert.equal((await verifyStore(second)).ok, true);
    } finally {
      await Promise.all([first.close(), second.close()]);
    }
  });

  it("delivers another instance's appends to a subscriber by NOTIFY, and ends subscriptions on close", {
    timeout: 20_000,
  }, async () => {
    const writer = await (await shared()).openStore();
    // A poll interval far beyond the test: only a notification can wake this subscriber in time.
    const reader = createPostgresEventStore({
      connectionString: (await shared()).writerUrl,
      schema: writer.schema,
      pollIntervalMs: 600_000,
    });
    try {
      const seen: bigint[] = [];
      let sawTwo!: () => void;
      const two = new Promise<void>((resolve) => {
        sawTwo = resolve;
      });
      const subscription = (async () => {
        for await (const event of reader.subscribeAll({ signal: new AbortController().signal })) {
          seen.push(event.position);
          if (seen.length === 2) sawTwo();
        }
      })();
      await writer.append("session-1", [testEvent(0)]);
      await new Promise((resolve) => setTimeout(resolve, 100));
      await writer.append("session-1", [testEvent(1)]);
      await two;
      await reader.close();
      await subscription;
      assert.deepEqual(seen, [1n, 2n]);
    } finally {
      await Promise.all([writer.close(), reader.close()]);
    }
  });
});
