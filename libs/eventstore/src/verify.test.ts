import { strict as assert } from "node:assert";
import { generateKeyPairSync } from "node:crypto";
import { before, describe, it } from "node:test";
import { chainHash, GENESIS_HASH } from "./chain.ts";
import { createCheckpointSigner, decodeCheckpoint, encodeCheckpoint } from "./checkpoint.ts";
import { createInMemoryEventStore } from "./memory/event-store.ts";
import { CHECKPOINT_STREAM, type RecordedEvent } from "./store.ts";
import { collect, testEvent } from "./testing/contract.ts";
import { type VerifyOptions, type VerifyResult, verifyEvents } from "./verify.ts";

const keys = generateKeyPairSync("ed25519");
const signer = createCheckpointSigner(keys.privateKey);

async function* from(events: readonly RecordedEvent[]) {
  yield* events;
}

const verify = (events: readonly RecordedEvent[], publicKey: VerifyOptions["publicKey"] | "none" = keys.publicKey) =>
  verifyEvents(from(events), publicKey === "none" ? {} : { publicKey });

/** Recomputes every hash from the first event on, as a forger with write access to the whole log would. */
function rechain(events: readonly RecordedEvent[]): RecordedEvent[] {
  let prevHash = GENESIS_HASH;
  return events.map((event) => {
    const relinked = { ...event, prevHash, hash: chainHash(prevHash, { ...event }) };
    prevHash = relinked.hash;
    return relinked;
  });
}

function failedAt(result: VerifyResult, position: bigint, reason: RegExp): void {
  assert.equal(result.ok, false, "verification should fail");
  if (result.ok) return;
  assert.equal(result.position, position, result.reason);
  assert.match(result.reason, reason);
}

describe("verifyEvents", () => {
  let log: RecordedEvent[];
  before(async () => {
    const store = createInMemoryEventStore({ signer, checkpointEveryEvents: 5 });
    for (let n = 0; n < 14; n++) await store.append(`session-${n % 3}`, [testEvent(n)]);
    log = await collect(store.readAll());
  });

  it("accepts an untouched log and verifies its checkpoint signatures", async () => {
    assert.deepEqual(
      log.filter((event) => event.stream === CHECKPOINT_STREAM).map((event) => event.position),
      [6n, 12n],
    );
    assert.deepEqual(await verify(log), {
      ok: true,
      head: { position: 16n, hash: log.at(-1)!.hash },
      events: 16,
      checkpoints: 2,
      signatures: "verified",
    });
    const unchecked = await verify(log, "none");
    assert.equal(unchecked.ok && unchecked.signatures, "unchecked");
  });

  it("names an edited event", async () => {
    const edited = log.map((event) => (event.position === 4n ? { ...event, data: new Uint8Array([1]) } : event));
    failedAt(await verify(edited), 4n, /hash mismatch.*edited/);
  });

  it("names a deleted event", async () => {
    failedAt(await verify(log.filter((event) => event.position !== 9n)), 9n, /position 9 is missing.*deleted/);
    failedAt(await verify(log.slice(1)), 1n, /position 1 is missing/);
  });

  it("names the first of two swapped events", async () => {
    const swapped = log.map((event) =>
      event.position === 3n ? { ...event, position: 8n } : event.position === 8n ? { ...event, position: 3n } : event,
    );
    swapped.sort((a, b) => Number(a.position - b.position));
    failedAt(await verify(swapped), 3n, /prev_hash .* reordered/);
    const outOfOrder = [log[0]!, log[2]!, log[1]!];
    failedAt(await verify(outOfOrder), 2n, /position 2 is missing/);
  });

  it("catches a rewritten chain at the next checkpoint", async () => {
    const forged = rechain(
      log.map((event) => (event.position === 3n ? { ...event, data: new Uint8Array([1]) } : event)),
    );
    failedAt(await verify(forged), 6n, /checkpoint states position 5 with hash .* but it follows position 5 with hash/);
  });

  it("catches a checkpoint whose statement was rewritten to match, by its signature", async () => {
    const edited = log.map((event) => (event.position === 3n ? { ...event, data: new Uint8Array([1]) } : event));
    let forged = rechain(edited);
    const checkpoint = decodeCheckpoint(forged[5]!.data);
    forged[5] = { ...forged[5]!, data: encodeCheckpoint({ ...checkpoint, hash: forged[4]!.hash }) };
    forged = rechain(forged);
    failedAt(await verify(forged), 6n, /bad checkpoint signature/);
    // Without the public key, only the statement can be checked, and it matches: keys are what make checkpoints count.
    assert.equal((await verify(forged, "none")).ok, false);
  });

  it("refuses checkpoints signed by a key it was not given; accepts several keys (rotation)", async () => {
    const forger = createCheckpointSigner(generateKeyPairSync("ed25519").privateKey);
    // Re-sign every checkpoint while rechaining, so each one states the rewritten head it follows.
    let prevHash = GENESIS_HASH;
    const resigned = log.map((event) => {
      const data =
        event.stream === CHECKPOINT_STREAM
          ? encodeCheckpoint(forger.sign({ ...decodeCheckpoint(event.data), hash: prevHash }))
          : event.data;
      const relinked = { ...event, data, prevHash, hash: chainHash(prevHash, { ...event, data }) };
      prevHash = relinked.hash;
      return relinked;
    });
    failedAt(await verify(resigned), 6n, /unknown key/);
    assert.equal((await verify(resigned, forger.publicKey)).ok, true);
    assert.equal((await verify(resigned, [keys.publicKey, forger.publicKey])).ok, true);
  });

  it("refuses anything but checkpoints in the checkpoint stream", async () => {
    const planted = log.map((event) => (event.position === 6n ? { ...event, type: "agentgate.v1.Other" } : event));
    failedAt(await verify(rechain(planted)), 6n, /holds an event of type agentgate\.v1\.Other/);
  });
});
