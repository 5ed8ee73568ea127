import { type KeyObject, sign, verify } from "node:crypto";
import { isHash } from "./chain.ts";
import { keyIdOf, loadPrivateKey, loadPublicKey, type PrivateKeyInput } from "./keys.ts";

/** Type of the events the store appends to CHECKPOINT_STREAM. */
export const CHECKPOINT_TYPE = "agentgate.eventstore.v1.Checkpoint";

/** "The log up to `position` has head `hash`", as of `signedAt`. */
export interface CheckpointStatement {
  position: bigint;
  hash: string;
  signedAt: Date;
}

export interface SignedCheckpoint extends CheckpointStatement {
  /** keyIdOf the signing key. */
  keyId: string;
  /** Base64 Ed25519 signature over statementMessage(statement). */
  signature: string;
}

export interface CheckpointSigner {
  readonly keyId: string;
  readonly publicKey: KeyObject;
  sign(statement: CheckpointStatement): SignedCheckpoint;
}

/** A signer from an Ed25519 private key (PKCS#8 PEM, raw 32-byte seed, or KeyObject). */
export function createCheckpointSigner(privateKey: PrivateKeyInput): CheckpointSigner {
  const key = loadPrivateKey(privateKey);
  const publicKey = loadPublicKey(key);
  const keyId = keyIdOf(publicKey);
  return {
    keyId,
    publicKey,
    sign: (statement) => ({
      ...statement,
      keyId,
      signature: sign(null, statementMessage(statement), key).toString("base64"),
    }),
  };
}

/**
 * The exact bytes signed, UTF-8:
 * "agentgate.eventstore.v1.Checkpoint\nposition=<decimal>\nhash=<64 hex>\nsignedAt=<ISO 8601 UTC, ms>\n".
 */
export function statementMessage(statement: CheckpointStatement): Buffer {
  return Buffer.from(
    `${CHECKPOINT_TYPE}\nposition=${statement.position}\nhash=${statement.hash}\n` +
      `signedAt=${statement.signedAt.toISOString()}\n`,
    "utf8",
  );
}

export function checkpointSignatureValid(checkpoint: SignedCheckpoint, publicKey: KeyObject): boolean {
  return verify(null, statementMessage(checkpoint), publicKey, Buffer.from(checkpoint.signature, "base64"));
}

/** The checkpoint event's data: UTF-8 JSON {position, hash, signedAt, keyId, signature}, in that order. */
export function encodeCheckpoint(checkpoint: SignedCheckpoint): Uint8Array {
  const { position, hash, signedAt, keyId, signature } = checkpoint;
  const json = JSON.stringify({ position: Number(position), hash, signedAt: signedAt.toISOString(), keyId, signature });
  return Buffer.from(json, "utf8");
}

/** Parses checkpoint event data; throws a TypeError that says what is wrong. */
export function decodeCheckpoint(data: Uint8Array): SignedCheckpoint {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(data));
  } catch {
    throw new TypeError("checkpoint data is not UTF-8 JSON");
  }
  const record = (typeof parsed === "object" && parsed !== null ? parsed : {}) as Record<string, unknown>;
  const { position, hash, signedAt, keyId, signature } = record;
  if (!Number.isSafeInteger(position) || (position as number) < 0) throw new TypeError("bad checkpoint position");
  if (!isHash(hash)) throw new TypeError("bad checkpoint hash");
  if (typeof signedAt !== "string" || !isCanonicalIso(signedAt)) throw new TypeError("bad checkpoint signedAt");
  if (!isHash(keyId)) throw new TypeError("bad checkpoint key id");
  if (typeof signature !== "string" || Buffer.from(signature, "base64").toString("base64") !== signature) {
    throw new TypeError("bad checkpoint signature encoding");
  }
  return { position: BigInt(position as number), hash, signedAt: new Date(signedAt), keyId, signature };
}

function isCanonicalIso(value: string): boolean {
  const date = new Date(value);
  return !Number.isNaN(date.getTime()) && date.toISOString() === value;
}
