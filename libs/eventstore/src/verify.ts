import type { KeyObject } from "node:crypto";
import { chainHash, GENESIS_HASH } from "./chain.ts";
import { CHECKPOINT_TYPE, checkpointSignatureValid, decodeCheckpoint, type SignedCheckpoint } from "./checkpoint.ts";
import { keyIdOf, loadPublicKey, type PublicKeyInput } from "./keys.ts";
import { CHECKPOINT_STREAM, type ChainHead, type EventStore, type RecordedEvent } from "./store.ts";

/**
 * How checkpoint signatures were checked: against keys the caller trusts, against the key a bundle carries (which
 * proves nothing about who wrote it unless that key is known), or not at all (no key given).
 */
export type SignatureCheck = "verified" | "self-asserted" | "unchecked";

export interface VerifyOk {
  ok: true;
  /** The last event verified; undefined for an empty log or bundle. */
  head: ChainHead | undefined;
  events: number;
  checkpoints: number;
  signatures: SignatureCheck;
}

export interface VerifyFailure {
  ok: false;
  /** The first position that does not verify (0n: the bundle as a whole, e.g. its manifest). */
  position: bigint;
  reason: string;
}

export type VerifyResult = VerifyOk | VerifyFailure;

export interface VerifyOptions {
  /** Ed25519 public key(s) that sign checkpoints; several when keys were rotated. */
  publicKey?: PublicKeyInput | readonly PublicKeyInput[];
  signal?: AbortSignal;
}

/** Where verification starts: position 1 after GENESIS_HASH, or a partial export's first event. */
export interface ChainAnchor {
  position: bigint;
  prevHash: string;
}

export interface FoundCheckpoint {
  /** Position of the checkpoint event itself. */
  position: bigint;
  checkpoint: SignedCheckpoint;
}

export interface ChainVerifier {
  /** Checks the next event in log order; returns the failure, if any (stop at the first). */
  check(event: RecordedEvent): VerifyFailure | undefined;
  readonly checkpoints: readonly FoundCheckpoint[];
  summary(): VerifyOk;
}

export const GENESIS: ChainAnchor = { position: 1n, prevHash: GENESIS_HASH };

/** Checks events one by one: positions gapless from the anchor, prev_hash links, hashes, checkpoints. */
export function createChainVerifier(
  keys: ReadonlyMap<string, KeyObject>,
  signatures: SignatureCheck,
  anchor: ChainAnchor = GENESIS,
): ChainVerifier {
  let expected = anchor.position;
  let previousHash = anchor.prevHash;
  let head: ChainHead | undefined;
  let events = 0;
  const checkpoints: FoundCheckpoint[] = [];
  const fail = (position: bigint, reason: string): VerifyFailure => ({ ok: false, position, reason });

  return {
    checkpoints,
    check(event) {
      const { position } = event;
      if (position > expected) {
        return fail(expected, `position ${expected} is missing (the next event is at ${position}): deleted`);
      }
      if (position < expected) {
        return fail(expected, `position ${expected} holds an event of position ${position}: reordered or duplicated`);
      }
      if (event.prevHash !== previousHash) {
        return fail(
          position,
          `prev_hash ${event.prevHash} is not the hash of position ${position - 1n} (${previousHash}): ` +
            "reordered, or an earlier event was replaced",
        );
      }
      const recomputed = chainHash(event.prevHash, event);
      if (recomputed !== event.hash) {
        return fail(position, `hash mismatch (stored ${event.hash}, content hashes to ${recomputed}): edited`);
      }
      if (event.stream === CHECKPOINT_STREAM) {
        const problem = checkCheckpoint(event, keys, checkpoints);
        if (problem !== undefined) return fail(position, problem);
      }
      expected = position + 1n;
      previousHash = event.hash;
      head = { position, hash: event.hash };
      events += 1;
      return undefined;
    },
    summary: () => ({
      ok: true,
      head,
      events,
      checkpoints: checkpoints.length,
      signatures: keys.size === 0 ? "unchecked" : signatures,
    }),
  };
}

function checkCheckpoint(
  event: RecordedEvent,
  keys: ReadonlyMap<string, KeyObject>,
  found: FoundCheckpoint[],
): string | undefined {
  if (event.type !== CHECKPOINT_TYPE) return `${CHECKPOINT_STREAM} holds an event of type ${event.type}`;
  let checkpoint: SignedCheckpoint;
  try {
    checkpoint = decodeCheckpoint(event.data);
  } catch (error) {
    return `unreadable checkpoint: ${(error as Error).message}`;
  }
  if (checkpoint.position !== event.position - 1n || checkpoint.hash !== event.prevHash) {
    return (
      `checkpoint states position ${checkpoint.position} with hash ${checkpoint.hash}, ` +
      `but it follows position ${event.position - 1n} with hash ${event.prevHash}`
    );
  }
  if (keys.size > 0) {
    const key = keys.get(checkpoint.keyId);
    if (key === undefined) return `checkpoint signed by an unknown key ${checkpoint.keyId}`;
    if (!checkpointSignatureValid(checkpoint, key)) return `bad checkpoint signature (key ${checkpoint.keyId})`;
  }
  found.push({ position: event.position, checkpoint });
  return undefined;
}

/** The trusted keys by key id. */
export function keyring(publicKey: VerifyOptions["publicKey"]): Map<string, KeyObject> {
  const inputs = publicKey === undefined ? [] : Array.isArray(publicKey) ? publicKey : [publicKey];
  return new Map(
    inputs.map((input: PublicKeyInput) => {
      const key = loadPublicKey(input);
      return [keyIdOf(key), key];
    }),
  );
}

/** Verifies a log given in position order, from its beginning. */
export async function verifyEvents(
  events: AsyncIterable<RecordedEvent>,
  options: VerifyOptions = {},
): Promise<VerifyResult> {
  const verifier = createChainVerifier(keyring(options.publicKey), "verified");
  for await (const event of events) {
    const failure = verifier.check(event);
    if (failure !== undefined) return failure;
  }
  return verifier.summary();
}

/** Where verifyStore reads the log when it is not given a store. */
export interface PostgresLocation {
  connectionString: string;
  schema?: string;
}

/** Reads the whole log of a store (or of a PostgreSQL database) and verifies chain and checkpoints. */
export async function verifyStore(
  target: EventStore | PostgresLocation,
  options: VerifyOptions = {},
): Promise<VerifyResult> {
  if ("readAll" in target) return verifyEvents(target.readAll({ signal: options.signal }), options);
  // Imported here so that the verifier itself does not load the PostgreSQL driver.
  const { createPostgresEventStore } = await import("./postgres/event-store.ts");
  const store = createPostgresEventStore(target);
  try {
    return await verifyEvents(store.readAll({ signal: options.signal }), options);
  } finally {
    await store.close();
  }
}
