import { strict as assert } from "node:assert";
import { generateKeyPairSync } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { CHECKPOINT_TYPE, createCheckpointSigner, decodeCheckpoint } from "../checkpoint.ts";
import { CHECKPOINT_STREAM } from "../store.ts";
import { collect, testEvent } from "../testing/contract.ts";
import { verifyStore } from "../verify.ts";
import { type StoreDatabase, storeDatabase } from "./testing.ts";

const keys = generateKeyPairSync("ed25519");
const seed = keys.privateKey.export({ format: "der", type: "pkcs8" }).subarray(-32);
const signer = createCheckpointSigner(seed);

describe("signed checkpoints on PostgreSQL", () => {
  let database: StoreDatabase;
  before(async () => {
    database = await storeDatabase();
  });
  after(() => database.drop());

  it("appends a checkpoint once N events follow the last one, signing the head it follows", async () => {
    const store = await database.openStore({ signer, checkpointEvery: { events: 10 } });
    try {
      for (let n = 0; n < 25; n++) await store.append(`session-${n % 4}`, [testEvent(n)]);
      const checkpoints = await collect(store.readStream(CHECKPOINT_STREAM));
      assert.deepEqual(
        checkpoints.map((event) => [event.position, event.revision, event.type]),
        [
          [11n, 0n, CHECKPOINT_TYPE],
          [22n, 1n, CHECKPOINT_TYPE],
        ],
      );
      const [first] = checkpoints;
      const statement = decodeCheckpoint(first!.data);
      assert.equal(statement.position, 10n);
      assert.equal(statement.hash, first!.prevHash);
      assert.equal(statement.keyId, signer.keyId);
      assert.deepEqual(await verifyStore(store, { publicKey: keys.publicKey }), {
        ok: true,
        head: await store.head(),
        events: 27,
        checkpoints: 2,
        signatures: "verified",
      });
      // A batch that crosses the mark is signed once, after the whole batch.
      await store.append(
        "session-batch",
        Array.from({ length: 25 }, (_, n) => testEvent(n)),
      );
      assert.deepEqual(
        (await collect(store.readStream(CHECKPOINT_STREAM))).map((event) => event.position),
        [11n, 22n, 53n],
      );
    } finally {
      await store.close();
    }
  });

  it("appends a checkpoint every T seconds while events arrive, and none while idle", async () => {
    const store = await database.openStore({ signer, checkpointEvery: { seconds: 0.2 } });
    try {
      await store.append("session-1", [testEvent(0)]);
      await sleep(400);
      const afterFirst = await collect(store.readAll());
      assert.deepEqual(
        afterFirst.map((event) => event.stream),
        ["session-1", CHECKPOINT_STREAM],
      );
      await sleep(400);
      assert.equal((await collect(store.readAll())).length, 2, "no checkpoint without new events");
      await store.append("session-1", [testEvent(1)]);
      await sleep(400);
      const all = await collect(store.readAll());
      assert.deepEqual(
        all.map((event) => event.stream),
        ["session-1", CHECKPOINT_STREAM, "session-1", CHECKPOINT_STREAM],
      );
      assert.equal((await verifyStore(store, { publicKey: signer.publicKey })).ok, true);
    } finally {
      await store.close();
    }
  });

  it("signs on request, and keeps the chain linear when appenders race the checkpoints", async () => {
    const store = await database.openStore({ signer, checkpointEvery: { events: 7, seconds: 0.05 } });
    try {
      await Promise.all(
        Array.from({ length: 5 }, async (_, writer) => {
          for (let n = 0; n < 20; n++) await store.append(`session-${writer}`, [testEvent(n)]);
        }),
      );
      const forced = await store.checkpoint();
      assert.equal(forced?.stream, CHECKPOINT_STREAM);
      assert.equal(await store.checkpoint(), undefined, "the head already is a checkpoint");
      const result = await verifyStore(store, { publicKey: keys.publicKey });
      assert.equal(
        result.ok,
        true,
        JSON.stringify(result, (_, v) => (typeof v === "bigint" ? `${v}` : v)),
      );
      assert.ok(result.ok && result.checkpoints >= 100 / 7);
    } finally {
      await store.close();
    }
  });

  it("refuses checkpoint settings without a signer", async () => {
    await assert.rejects(database.openStore({ checkpointEvery: { events: 10 } }), { code: "invalid_argument" });
    await assert.rejects(database.openStore({ signer, checkpointEvery: { events: 0 } }), { code: "invalid_argument" });
  });
});
