import { strict as assert } from "node:assert";
import { generateKeyPairSync } from "node:crypto";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Client } from "pg";
import { exportBundle, verifyBundle } from "./bundle.ts";
import { EVENTS_FILE } from "./bundle-format.ts";
import { chainHash } from "./chain.ts";
import { createCheckpointSigner } from "./checkpoint.ts";
import type { PostgresEventStore } from "./postgres/event-store.ts";
import { type StoreDatabase, storeDatabase } from "./postgres/testing.ts";
import type { RecordedEvent } from "./store.ts";
import { collect, testEvent } from "./testing/contract.ts";
import { type VerifyResult, verifyStore } from "./verify.ts";

const keys = generateKeyPairSync("ed25519");
const signer = createCheckpointSigner(keys.privateKey.export({ format: "pem", type: "pkcs8" }).toString());
const publicKey = keys.publicKey.export({ format: "pem", type: "spki" }).toString();

function failedAt(result: VerifyResult, position: bigint, reason: RegExp): void {
  assert.equal(result.ok, false, "tampering went unnoticed");
  if (result.ok) return;
  assert.equal(result.position, position, result.reason);
  assert.match(result.reason, reason);
}

describe("tampering with the audit record is evident", () => {
  let database: StoreDatabase;
  let superuser: Client;
  let workDir: string;
  const stores: PostgresEventStore[] = [];

  before(async () => {
    database = await storeDatabase();
    superuser = new Client({ connectionString: database.db.url });
    await superuser.connect();
    workDir = await mkdtemp(join(tmpdir(), "agentgate-tamper-"));
  });
  after(async () => {
    await Promise.all(stores.map((store) => store.close()));
    await superuser.end();
    await database.drop();
    await rm(workDir, { recursive: true, force: true });
  });

  /** 102 events: 100 in three time-separated phases of 34/33/33, signed checkpoints at 51 and 102. */
  async function auditLog(): Promise<PostgresEventStore> {
    const store = await database.openStore({ signer, checkpointEvery: { events: 50 } });
    stores.push(store);
    for (let n = 0; n < 100; n++) {
      if (n === 34 || n === 67) await sleep(20);
      await store.append(`session-${n % 7}`, [testEvent(n)]);
    }
    return store;
  }

  /** Runs `sql` as the superuser with the append-only trigger disabled, as an attacker with full access would. */
  async function tamper(store: PostgresEventStore, sql: string, params: unknown[] = []): Promise<void> {
    const events = `${store.schema}.events`;
    await superuser.query(`ALTER TABLE ${events} DISABLE TRIGGER events_append_only`);
    try {
      await superuser.query(sql.replaceAll("$events", events), params);
    } finally {
      await superuser.query(`ALTER TABLE ${events} ENABLE TRIGGER events_append_only`);
    }
  }

  it("verifies the untouched log, by store and by connection string", async () => {
    const store = await auditLog();
    const expected = { ok: true, head: await store.head(), events: 102, checkpoints: 2, signatures: "verified" };
    assert.deepEqual(await verifyStore(store, { publicKey }), expected);
    const location = { connectionString: database.writerUrl, schema: store.schema };
    assert.deepEqual(await verifyStore(location, { publicKey }), expected);
  });

  it("names an event whose data was edited", async () => {
    const store = await auditLog();
    await tamper(store, "UPDATE $events SET data = '\\x00' WHERE position = 37");
    failedAt(await verifyStore(store, { publicKey }), 37n, /hash mismatch.*edited/);
  });

  it("names a deleted event", async () => {
    const store = await auditLog();
    await tamper(store, "DELETE FROM $events WHERE position = 37");
    failedAt(await verifyStore(store, { publicKey }), 37n, /position 37 is missing.*deleted/);
  });

  it("names the first of two events whose positions were swapped", async () => {
    const store = await auditLog();
    await tamper(
      store,
      `UPDATE $events SET position = 1000000 WHERE position = 20;
       UPDATE $events SET position = 20 WHERE position = 30;
       UPDATE $events SET position = 30 WHERE position = 1000000`,
    );
    failedAt(await verifyStore(store, { publicKey }), 20n, /prev_hash .* reordered/);
  });

  it("catches an edit whose hashes were all recomputed, at the next signed checkpoint", async () => {
    const store = await auditLog();
    const log = await collect(store.readAll());
    let prevHash = log[35]!.hash;
    const rewritten: RecordedEvent[] = log.slice(36).map((event) => {
      const data = event.position === 37n ? new Uint8Array([0]) : event.data;
      const hash = chainHash(prevHash, { ...event, data });
      const forged = { ...event, data, prevHash, hash };
      prevHash = hash;
      return forged;
    });
    for (const event of rewritten) {
      await tamper(store, "UPDATE $events SET data = $1, prev_hash = $2, hash = $3 WHERE position = $4", [
        event.data,
        event.prevHash,
        event.hash,
        event.position.toString(),
      ]);
    }
    failedAt(await verifyStore(store, { publicKey }), 51n, /checkpoint states position 50/);
  });

  it("exports a bundle that verifies offline from its directory alone, and fails on any edited byte", async () => {
    const store = await auditLog();
    const exported = join(workDir, "full");
    await exportBundle(store, { out: exported, publicKey });
    await store.close();
    const offline = join(workDir, "copied");
    await cp(exported, offline, { recursive: true });
    const result = await verifyBundle(offline, { publicKey });
    assert.deepEqual(result, {
      ok: true,
      head: result.ok ? result.head : undefined,
      events: 102,
      checkpoints: 2,
      signatures: "verified",
    });
    assert.equal((await verifyBundle(offline)).ok, true);

    const file = join(offline, EVENTS_FILE);
    const original = await readFile(file);
    for (let sample = 0; sample < 40; sample++) {
      const offset = Math.floor((sample / 40) * original.length) + (sample % 7);
      const edited = Buffer.from(original);
      edited[offset] = edited[offset]! ^ 0x20;
      await writeFile(file, edited);
      const verdict = await verifyBundle(offline, { publicKey });
      assert.equal(verdict.ok, false, `byte ${offset} edited went unnoticed`);
    }
  });

  it("exports a time range that verifies from its first event, checkpoint included", async () => {
    const store = await auditLog();
    const log = await collect(store.readAll());
    const out = join(workDir, "partial");
    const manifest = await exportBundle(store, {
      out,
      since: log[34]!.recordedAt,
      until: log[68]!.recordedAt,
      publicKey,
    });
    assert.deepEqual([manifest.range.fromPosition, manifest.range.toPosition], [35, 68]);
    assert.equal(manifest.prevHash, log[33]!.hash);
    const result = await verifyBundle(out, { publicKey });
    assert.deepEqual(result, {
      ok: true,
      head: { position: 68n, hash: log[67]!.hash },
      events: 34,
      checkpoints: 1,
      signatures: "verified",
    });
  });
});
