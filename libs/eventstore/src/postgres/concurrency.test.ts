import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import { collect, testEvent } from "../testing/contract.ts";
import { verifyStore } from "../verify.ts";
import { type StoreDatabase, storeDatabase } from "./testing.ts";

function rate(events: number, started: bigint): string {
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  return `${events} events in ${ms.toFixed(0)} ms = ${Math.round((events / ms) * 1000)} events/s`;
}

describe("PostgreSQL appends under concurrency", () => {
  let database: StoreDatabase;
  before(async () => {
    database = await storeDatabase();
  });
  after(() => database.drop());

  it("gives 10 concurrent appenders × 100 events the positions 1..1000, gapless, with a verifying chain", async (t) => {
    const store = await database.openStore({ maxConnections: 10 });
    try {
      const started = process.hrtime.bigint();
      await Promise.all(
        Array.from({ length: 10 }, async (_, writer) => {
          for (let n = 0; n < 100; n++) {
            await store.append(`session-${writer}`, [testEvent(n)], {
              expectedRevision: n === 0 ? "no_stream" : BigInt(n - 1),
            });
          }
        }),
      );
      t.diagnostic(`concurrent: 10 appenders × 100 single-event appends: ${rate(1000, started)}`);
      const all = await collect(store.readAll());
      assert.deepEqual(
        all.map((event) => event.position),
        Array.from({ length: 1000 }, (_, index) => BigInt(index + 1)),
      );
      for (let writer = 0; writer < 10; writer++) {
        const stream = await collect(store.readStream(`session-${writer}`));
        assert.deepEqual(
          stream.map((event) => event.revision),
          Array.from({ length: 100 }, (_, index) => BigInt(index)),
        );
      }
      const verified = await verifyStore(store);
      assert.equal(verified.ok && verified.events, 1000);
    } finally {
      await store.close();
    }
  });

  it("groups the appends of 100 concurrent appenders into shared transactions", async (t) => {
    const store = await database.openStore({ maxConnections: 10 });
    try {
      const started = process.hrtime.bigint();
      await Promise.all(
        Array.from({ length: 100 }, async (_, writer) => {
          for (let n = 0; n < 20; n++) await store.append(`session-${writer}`, [testEvent(n)]);
        }),
      );
      t.diagnostic(`concurrent: 100 appenders × 20 single-event appends: ${rate(2000, started)}`);
      const verified = await verifyStore(store);
      assert.equal(verified.ok && verified.events, 2000);
    } finally {
      await store.close();
    }
  });

  it("measures a single appender, one event per append and in batches", async (t) => {
    const store = await database.openStore();
    try {
      let started = process.hrtime.bigint();
      for (let n = 0; n < 1000; n++) await store.append("session-single", [testEvent(n)]);
      t.diagnostic(`single: 1000 single-event appends: ${rate(1000, started)}`);
      started = process.hrtime.bigint();
      for (let n = 0; n < 100; n++) {
        await store.append(
          "session-batch",
          Array.from({ length: 100 }, (_, i) => testEvent(i)),
        );
      }
      t.diagnostic(`single: 100 appends of 100-event batches: ${rate(10_000, started)}`);
      started = process.hrtime.bigint();
      const verified = await verifyStore(store);
      t.diagnostic(`verifyStore: ${rate(11_000, started)}`);
      assert.equal(verified.ok && verified.events, 11_000);
    } finally {
      await store.close();
    }
  });
});
