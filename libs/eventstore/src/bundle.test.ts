import { strict as assert } from "node:assert";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { exportBundle, verifyBundle } from "./bundle.ts";
import { EVENTS_FILE, MANIFEST_FILE } from "./bundle-format.ts";
import { createCheckpointSigner } from "./checkpoint.ts";
import { createInMemoryEventStore, type InMemoryEventStore } from "./memory/event-store.ts";
import { testEvent } from "./testing/contract.ts";
import type { VerifyResult } from "./verify.ts";

const keys = generateKeyPairSync("ed25519");
const signer = createCheckpointSigner(keys.privateKey);
const second = (n: number) => new Date(Date.UTC(2025, 5, 1, 0, 0, n));

/** 14 events one second apart (recordedAt second(1) … ), checkpoints at positions 6 and 12. */
async function sampleStore(count = 14): Promise<InMemoryEventStore> {
  let clock = 0;
  const store = createInMemoryEventStore({ signer, checkpointEveryEvents: 5, now: () => second(clock) });
  for (let n = 0; n < count; n++) {
    clock += 1;
    await store.append(`session-${n % 3}`, [testEvent(n)]);
  }
  return store;
}

function failedAt(result: VerifyResult, position: bigint, reason?: RegExp): void {
  assert.equal(result.ok, false, "verification should fail");
  if (result.ok) return;
  assert.equal(result.position, position, result.reason);
  if (reason) assert.match(result.reason, reason);
}

describe("export bundles", () => {
  let root: string;
  let dirs = 0;
  const newDir = () => join(root, `bundle-${++dirs}`);
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "agentgate-bundle-"));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it("writes events.jsonl and a manifest that verifies offline from the directory alone", async () => {
    const out = newDir();
    const manifest = await exportBundle(await sampleStore(), { out, publicKey: keys.publicKey });
    assert.equal(manifest.count, 16);
    assert.deepEqual(manifest.range, { since: null, until: null, fromPosition: 1, toPosition: 16 });
    assert.equal(manifest.prevHash, "0".repeat(64));
    assert.deepEqual(
      manifest.checkpoints.map((checkpoint) => [checkpoint.eventPosition, checkpoint.position]),
      [
        [6, 5],
        [12, 11],
      ],
    );
    assert.deepEqual(
      manifest.publicKeys.map((key) => key.keyId),
      [signer.keyId],
    );
    const lines = (await readFile(join(out, EVENTS_FILE), "utf8")).split("\n");
    assert.equal(lines.length, 17);
    assert.deepEqual(Object.keys(JSON.parse(lines[0]!)), [
      "position",
      "stream",
      "revision",
      "eventId",
      "type",
      "occurredAt",
      "recordedAt",
      "data",
      "prevHash",
      "hash",
    ]);

    const moved = newDir();
    await cp(out, moved, { recursive: true });
    await rm(out, { recursive: true });
    assert.deepEqual(await verifyBundle(moved), {
      ok: true,
      head: { position: 16n, hash: manifest.head!.hash },
      events: 16,
      checkpoints: 2,
      signatures: "self-asserted",
    });
    const trusted = await verifyBundle(moved, { publicKey: keys.publicKey.export({ format: "pem", type: "spki" }) });
    assert.equal(trusted.ok && trusted.signatures, "verified");
    failedAt(await verifyBundle(moved, { publicKey: generateKeyPairSync("ed25519").publicKey }), 6n, /unknown key/);
  });

  it("exports a time range that verifies from its first event's prevHash, checkpoints included", async () => {
    const out = newDir();
    // recordedAt second(4) … second(10) are positions 4..10 (events 1..5, checkpoint 6 at second(5), …).
    const manifest = await exportBundle(await sampleStore(), { out, since: second(4), until: second(10) });
    assert.deepEqual([manifest.range.fromPosition, manifest.range.toPosition], [4, 10]);
    assert.notEqual(manifest.prevHash, "0".repeat(64));
    const result = await verifyBundle(out, { publicKey: keys.publicKey });
    assert.deepEqual(result, {
      ok: true,
      head: { position: 10n, hash: manifest.head!.hash },
      events: 7,
      checkpoints: 1,
      signatures: "verified",
    });
  });

  it("verifies an empty export", async () => {
    const out = newDir();
    const manifest = await exportBundle(await sampleStore(), { out, since: second(100) });
    assert.equal(manifest.count, 0);
    assert.deepEqual(await verifyBundle(out), {
      ok: true,
      head: undefined,
      events: 0,
      checkpoints: 0,
      signatures: "unchecked",
    });
  });

  it("fails when any one byte of events.jsonl is changed or removed, naming that byte's event", async () => {
    const out = newDir();
    await exportBundle(await sampleStore(5), { out, publicKey: keys.publicKey });
    const file = join(out, EVENTS_FILE);
    const original = await readFile(file);
    const slotOf = (offset: number) => BigInt(original.subarray(0, offset).filter((byte) => byte === 0x0a).length + 1);
    const edits: [string, (offset: number) => Buffer][] = [
      ["flipped", (offset) => Buffer.from(original).fill(original[offset]! ^ 0x01, offset, offset + 1)],
      ["removed", (offset) => Buffer.concat([original.subarray(0, offset), original.subarray(offset + 1)])],
    ];
    try {
      for (const [edit, apply] of edits) {
        for (let offset = 0; offset < original.length; offset++) {
          await writeFile(file, apply(offset));
          const result = await verifyBundle(out, { publicKey: keys.publicKey });
          assert.equal(result.ok, false, `byte ${offset} ${edit} went unnoticed`);
          if (!result.ok) assert.equal(result.position, slotOf(offset), `byte ${offset} ${edit}: ${result.reason}`);
        }
      }
    } finally {
      await writeFile(file, original);
    }
    assert.equal((await verifyBundle(out)).ok, true);
  });

  it("fails when the manifest does not match the events", async () => {
    const out = newDir();
    await exportBundle(await sampleStore(), { out, publicKey: keys.publicKey });
    const path = join(out, MANIFEST_FILE);
    const original = await readFile(path, "utf8");
    const check = async (change: (manifest: Record<string, unknown>) => void, position: bigint, reason: RegExp) => {
      const manifest = JSON.parse(original) as Record<string, unknown>;
      change(manifest);
      await writeFile(path, JSON.stringify(manifest));
      failedAt(await verifyBundle(out), position, reason);
    };
    await check((m) => Object.assign(m, { eventsSha256: "0".repeat(64) }), 0n, /sha256/);
    await check((m) => Object.assign(m, { count: 17 }), 17n, /position 17 is missing/);
    await check((m) => Object.assign(m, { count: 15 }), 0n, /counts 15 events/);
    await check((m) => Object.assign(m, { head: { position: 16, hash: "0".repeat(64) } }), 0n, /head/);
    await check((m) => (m.checkpoints as unknown[]).pop(), 0n, /checkpoints/);
    await check((m) => Object.assign(m, { prevHash: "1".repeat(64) }), 1n, /prev_hash/);
    await check((m) => Object.assign((m.publicKeys as object[])[0]!, { keyId: "1".repeat(64) }), 0n, /fingerprint/);
    await check((m) => Object.assign(m, { format: "something else" }), 0n, /not an agentgate/);
    await writeFile(path, "{");
    failedAt(await verifyBundle(out), 0n, /unreadable/);
    await writeFile(path, original);
    assert.equal((await verifyBundle(out)).ok, true);
  });

  it("round-trips events far larger than a read chunk", async () => {
    const store = createInMemoryEventStore();
    const data = randomBytes(3 * 1024 * 1024);
    await store.append("session-large", [testEvent(0), testEvent(1, { data }), testEvent(2)]);
    const out = newDir();
    await exportBundle(store, { out });
    const result = await verifyBundle(out);
    assert.equal(result.ok && result.events, 3);
    const line = (await readFile(join(out, EVENTS_FILE), "utf8")).split("\n")[1]!;
    assert.ok(Buffer.from(JSON.parse(line).data, "base64").equals(data));
  });

  it("fails as a whole when events.jsonl is missing", async () => {
    const out = newDir();
    await exportBundle(await sampleStore(), { out });
    await rm(join(out, EVENTS_FILE));
    failedAt(await verifyBundle(out), 0n, /unreadable/);
  });

  it("fails when the last events are cut off", async () => {
    const out = newDir();
    await exportBundle(await sampleStore(), { out });
    const file = join(out, EVENTS_FILE);
    const lines = (await readFile(file, "utf8")).split("\n");
    await writeFile(file, `${lines.slice(0, 14).join("\n")}\n`);
    failedAt(await verifyBundle(out), 15n, /position 15 is missing/);
  });
});
