import { createHash, createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import { EventStoreError } from "./errors.ts";

/** An Ed25519 private key: PEM (PKCS#8), the raw 32-byte seed, or a KeyObject. */
export type PrivateKeyInput = string | Uint8Array | KeyObject;
/** An Ed25519 public key: PEM (SPKI, or a private key PEM), the raw 32 bytes, or a KeyObject. */
export type PublicKeyInput = string | Uint8Array | KeyObject;

// DER prefixes that turn a raw Ed25519 seed or public key into PKCS#8 / SPKI (RFC 8410).
const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_ED25519_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

export function loadPrivateKey(input: PrivateKeyInput): KeyObject {
  const key = toKeyObject(input, "private", () => {
    const seed = rawKey(input as Uint8Array, "private key seed");
    return createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: "der", type: "pkcs8" });
  });
  return requireEd25519(key, "private");
}

export function loadPublicKey(input: PublicKeyInput): KeyObject {
  const key = toKeyObject(input, "public", () => {
    const raw = rawKey(input as Uint8Array, "public key");
    return createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, raw]), format: "der", type: "spki" });
  });
  return requireEd25519(key.type === "private" ? createPublicKey(key) : key, "public");
}

/** The key id: lowercase hex SHA-256 of the public key's SPKI DER encoding. */
export function keyIdOf(publicKey: KeyObject): string {
  return createHash("sha256")
    .update(publicKey.export({ format: "der", type: "spki" }))
    .digest("hex");
}

export function publicKeyPem(publicKey: KeyObject): string {
  return publicKey.export({ format: "pem", type: "spki" }).toString();
}

function toKeyObject(input: PrivateKeyInput, kind: "private" | "public", fromRaw: () => KeyObject): KeyObject {
  try {
    if (typeof input === "string") return kind === "private" ? createPrivateKey(input) : createPublicKey(input);
    if (input instanceof Uint8Array) return fromRaw();
    return input;
  } catch (error) {
    if (error instanceof EventStoreError) throw error;
    throw new EventStoreError("invalid_argument", `cannot read the Ed25519 ${kind} key`, { cause: error });
  }
}

function rawKey(bytes: Uint8Array, what: string): Buffer {
  if (bytes.byteLength !== 32) {
    throw new EventStoreError("invalid_argument", `a raw Ed25519 ${what} has 32 bytes, got ${bytes.byteLength}`);
  }
  return Buffer.from(bytes);
}

function requireEd25519(key: KeyObject, kind: "private" | "public"): KeyObject {
  if (key.type !== kind || key.asymmetricKeyType !== "ed25519") {
    throw new EventStoreError(
      "invalid_argument",
      `expected an Ed25519 ${kind} key, got a ${key.asymmetricKeyType ?? "symmetric"} ${key.type} key`,
    );
  }
  return key;
}
