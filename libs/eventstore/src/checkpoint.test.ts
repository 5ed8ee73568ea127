import { strict as assert } from "node:assert";
import { generateKeyPairSync } from "node:crypto";
import { describe, it } from "node:test";
import {
  checkpointSignatureValid,
  createCheckpointSigner,
  decodeCheckpoint,
  encodeCheckpoint,
  statementMessage,
} from "./checkpoint.ts";
import { keyIdOf, loadPublicKey } from "./keys.ts";

const statement = { position: 41n, hash: "ab".repeat(32), signedAt: new Date("2025-01-02T03:04:05.678Z") };

function ed25519() {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const seed = privateKey.export({ format: "der", type: "pkcs8" }).subarray(-32);
  const raw = publicKey.export({ format: "der", type: "spki" }).subarray(-32);
  return { privateKey, publicKey, seed, raw };
}

describe("checkpoints", () => {
  it("signs the documented statement with a key given as PEM or as a raw seed, under the same key id", () => {
    const { privateKey, publicKey, seed } = ed25519();
    const fromPem = createCheckpointSigner(privateKey.export({ format: "pem", type: "pkcs8" }).toString());
    const fromSeed = createCheckpointSigner(seed);
    assert.equal(fromPem.keyId, fromSeed.keyId);
    assert.equal(fromPem.keyId, keyIdOf(publicKey));
    assert.match(fromPem.keyId, /^[0-9a-f]{64}$/);
    assert.equal(
      statementMessage(statement).toString(),
      `agentgate.eventstore.v1.Checkpoint\nposition=41\nhash=${"ab".repeat(32)}\nsignedAt=2025-01-02T03:04:05.678Z\n`,
    );
    const signed = fromSeed.sign(statement);
    assert.equal(checkpointSignatureValid(signed, publicKey), true);
    // Ed25519 is deterministic: both signers produce the same signature.
    assert.equal(fromPem.sign(statement).signature, signed.signature);
  });

  it("rejects a signature over a changed statement or from another key", () => {
    const { seed, publicKey, raw } = ed25519();
    const signed = createCheckpointSigner(seed).sign(statement);
    assert.equal(checkpointSignatureValid({ ...signed, position: 42n }, publicKey), false);
    assert.equal(checkpointSignatureValid({ ...signed, hash: "cd".repeat(32) }, publicKey), false);
    assert.equal(checkpointSignatureValid({ ...signed, signedAt: new Date(0) }, publicKey), false);
    assert.equal(checkpointSignatureValid(signed, ed25519().publicKey), false);
    assert.equal(checkpointSignatureValid(signed, loadPublicKey(raw)), true);
  });

  it("round-trips through the checkpoint event's data and refuses malformed data", () => {
    const signed = createCheckpointSigner(ed25519().seed).sign(statement);
    assert.deepEqual(decodeCheckpoint(encodeCheckpoint(signed)), signed);
    const json = (value: object) => new TextEncoder().encode(JSON.stringify(value));
    const good = JSON.parse(new TextDecoder().decode(encodeCheckpoint(signed))) as Record<string, unknown>;
    for (const bad of [
      { ...good, position: "41" },
      { ...good, hash: "AB".repeat(32) },
      { ...good, signedAt: "2025-01-02" },
      { ...good, keyId: "k" },
      { ...good, signature: "not base64!" },
    ]) {
      assert.throws(() => decodeCheckpoint(json(bad)), TypeError);
    }
    assert.throws(() => decodeCheckpoint(new Uint8Array([0xff])), TypeError);
  });

  it("accepts only Ed25519 keys", () => {
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 });
    assert.throws(() => createCheckpointSigner(rsa.privateKey), { code: "invalid_argument" });
    assert.throws(() => createCheckpointSigner(new Uint8Array(31)), { code: "invalid_argument" });
    assert.throws(() => createCheckpointSigner("-----BEGIN NONSENSE-----"), { code: "invalid_argument" });
    assert.throws(() => loadPublicKey(rsa.publicKey), { code: "invalid_argument" });
  });
});
