import { createHash } from "node:crypto";
import { once } from "node:events";
import { createReadStream, createWriteStream, type WriteStream } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  BUNDLE_FORMAT,
  type BundleCheckpoint,
  type BundleManifest,
  decodeLine,
  EVENTS_FILE,
  encodeLine,
  MANIFEST_FILE,
} from "./bundle-format.ts";
import { GENESIS_HASH, isHash } from "./chain.ts";
import { decodeCheckpoint } from "./checkpoint.ts";
import { keyIdOf, type PublicKeyInput, publicKeyPem } from "./keys.ts";
import { CHECKPOINT_STREAM, type EventStore, type RecordedEvent } from "./store.ts";
import {
  createChainVerifier,
  type FoundCheckpoint,
  keyring,
  type SignatureCheck,
  type VerifyFailure,
  type VerifyOk,
  type VerifyOptions,
  type VerifyResult,
} from "./verify.ts";

export interface ExportOptions {
  /** Events recorded at or after this time; recordedAt never decreases along the log, so the range is contiguous. */
  since?: Date;
  /** Events recorded before this time. */
  until?: Date;
  /** Directory to write events.jsonl and manifest.json into; created if missing. */
  out: string;
  /** Keys that signed the log's checkpoints, written to the manifest for offline verification. */
  publicKey?: PublicKeyInput | readonly PublicKeyInput[];
  signal?: AbortSignal;
}

/** Writes the events recorded in [since, until) as a bundle that verifyBundle checks from its directory alone. */
export async function exportBundle(store: EventStore, options: ExportOptions): Promise<BundleManifest> {
  await mkdir(options.out, { recursive: true });
  const file = createWriteStream(join(options.out, EVENTS_FILE));
  const sha256 = createHash("sha256");
  let first: RecordedEvent | undefined;
  let last: RecordedEvent | undefined;
  let count = 0;
  const checkpoints: BundleCheckpoint[] = [];
  try {
    for await (const event of store.readAll({ signal: options.signal })) {
      if (options.since !== undefined && event.recordedAt < options.since) continue;
      if (options.until !== undefined && event.recordedAt >= options.until) break;
      const line = `${encodeLine(event)}\n`;
      sha256.update(line);
      await write(file, line);
      first ??= event;
      last = event;
      count += 1;
      const checkpoint = bundleCheckpoint(event);
      if (checkpoint !== undefined) checkpoints.push(checkpoint);
    }
  } finally {
    file.end();
    await once(file, "close");
  }
  const manifest: BundleManifest = {
    format: BUNDLE_FORMAT,
    exportedAt: new Date().toISOString(),
    range: {
      since: options.since?.toISOString() ?? null,
      until: options.until?.toISOString() ?? null,
      fromPosition: first === undefined ? null : Number(first.position),
      toPosition: last === undefined ? null : Number(last.position),
    },
    count,
    prevHash: first?.prevHash ?? null,
    head: last === undefined ? null : { position: Number(last.position), hash: last.hash },
    checkpoints,
    publicKeys: [...keyring(options.publicKey).values()].map((key) => ({
      keyId: keyIdOf(key),
      pem: publicKeyPem(key),
    })),
    eventsSha256: sha256.digest("hex"),
  };
  await writeFile(join(options.out, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

/**
 * Verifies a bundle offline from its directory: every line, the chain from the manifest's prevHash, checkpoint
 * statements and signatures (with `publicKey` if given, else with the manifest's keys: "self-asserted"), and that
 * the manifest matches the events. Reports the first position that fails (0n when only the manifest is wrong).
 */
export async function verifyBundle(dir: string, options: Omit<VerifyOptions, "signal"> = {}): Promise<VerifyResult> {
  const manifest = await readManifest(dir);
  if ("ok" in manifest) return manifest;
  const trusted = options.publicKey !== undefined;
  const keys = trusted ? keyring(options.publicKey) : manifestKeys(manifest);
  if ("ok" in keys) return keys;
  const signatures: SignatureCheck = trusted ? "verified" : "self-asserted";
  const from = BigInt(manifest.range.fromPosition ?? 1);
  const verifier = createChainVerifier(keys, signatures, {
    position: from,
    prevHash: manifest.prevHash ?? GENESIS_HASH,
  });

  const sha256 = createHash("sha256");
  let expected = from;
  for await (const line of lines(join(dir, EVENTS_FILE), (bytes) => sha256.update(bytes))) {
    if (line.error !== undefined) return failure(line.file ? 0n : expected, `${EVENTS_FILE}: ${line.error}`);
    let event: RecordedEvent;
    try {
      event = decodeLine(line.text);
    } catch (error) {
      return failure(expected, `${EVENTS_FILE} line for position ${expected}: ${(error as Error).message}: edited`);
    }
    const broken = verifier.check(event);
    if (broken !== undefined) return broken;
    expected = event.position + 1n;
  }
  const summary = verifier.summary();
  return checkManifest(manifest, summary, expected, verifier.checkpoints, sha256.digest("hex")) ?? summary;
}

function checkManifest(
  manifest: BundleManifest,
  { events, head }: VerifyOk,
  next: bigint,
  found: readonly FoundCheckpoint[],
  sha256: string,
): VerifyFailure | undefined {
  if (events < manifest.count) {
    return failure(
      next,
      `position ${next} is missing: ${EVENTS_FILE} ends after ${events} of ${manifest.count} events`,
    );
  }
  if (events > manifest.count)
    return failure(0n, `the manifest counts ${manifest.count} events, the file has ${events}`);
  const listedHead = manifest.head === null ? undefined : `${manifest.head.position}:${manifest.head.hash}`;
  if (listedHead !== (head === undefined ? undefined : `${head.position}:${head.hash}`)) {
    return failure(0n, "the manifest's head is not the bundle's last event");
  }
  const listed = JSON.stringify(manifest.checkpoints);
  const actual = JSON.stringify(found.map(({ position, checkpoint }) => toBundleCheckpoint(position, checkpoint)));
  if (listed !== actual) return failure(0n, "the manifest's checkpoints are not the checkpoints in the bundle");
  if (sha256 !== manifest.eventsSha256) return failure(0n, `${EVENTS_FILE} does not match the manifest's sha256`);
  return undefined;
}

function bundleCheckpoint(event: RecordedEvent): BundleCheckpoint | undefined {
  if (event.stream !== CHECKPOINT_STREAM) return undefined;
  try {
    return toBundleCheckpoint(event.position, decodeCheckpoint(event.data));
  } catch {
    return undefined;
  }
}

function toBundleCheckpoint(eventPosition: bigint, checkpoint: FoundCheckpoint["checkpoint"]): BundleCheckpoint {
  return {
    eventPosition: Number(eventPosition),
    position: Number(checkpoint.position),
    hash: checkpoint.hash,
    signedAt: checkpoint.signedAt.toISOString(),
    keyId: checkpoint.keyId,
    signature: checkpoint.signature,
  };
}

async function readManifest(dir: string): Promise<BundleManifest | VerifyFailure> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(join(dir, MANIFEST_FILE), "utf8"));
  } catch (error) {
    return failure(0n, `${MANIFEST_FILE} is unreadable: ${(error as Error).message}`);
  }
  const m = parsed as Partial<BundleManifest> | null;
  const position = (value: unknown) => value === null || (Number.isSafeInteger(value) && (value as number) >= 1);
  const valid =
    m !== null &&
    typeof m === "object" &&
    m.format === BUNDLE_FORMAT &&
    typeof m.range === "object" &&
    m.range !== null &&
    position(m.range.fromPosition) &&
    Number.isSafeInteger(m.count) &&
    (m.prevHash === null || isHash(m.prevHash)) &&
    (m.head === null || (typeof m.head === "object" && position(m.head?.position))) &&
    Array.isArray(m.checkpoints) &&
    Array.isArray(m.publicKeys) &&
    isHash(m.eventsSha256);
  return valid ? (m as BundleManifest) : failure(0n, `${MANIFEST_FILE} is not an ${BUNDLE_FORMAT} manifest`);
}

function manifestKeys(manifest: BundleManifest): ReturnType<typeof keyring> | VerifyFailure {
  try {
    const keys = keyring(manifest.publicKeys.map((key) => key.pem));
    const listed = manifest.publicKeys.map((key) => key.keyId).sort();
    if (JSON.stringify([...keys.keys()].sort()) !== JSON.stringify(listed)) {
      return failure(0n, `a key id in ${MANIFEST_FILE} is not the fingerprint of its key`);
    }
    return keys;
  } catch (error) {
    return failure(0n, `${MANIFEST_FILE} holds an unreadable public key: ${(error as Error).message}`);
  }
}

/** A line's text, or what is wrong with it (or, `file`, with the whole file). */
type Line = { text: string; error?: undefined } | { text?: undefined; error: string; file?: boolean };

/** The file's "\n"-terminated lines as UTF-8, feeding every byte read to `onBytes`. */
async function* lines(path: string, onBytes: (bytes: Buffer) => void): AsyncGenerator<Line> {
  const decoder = new TextDecoder("utf-8", { fatal: true });
  // The current line's bytes so far: kept as parts so a long line (large event data) is joined once.
  let parts: Buffer[] = [];
  try {
    for await (const read of createReadStream(path)) {
      const chunk = read as Buffer;
      onBytes(chunk);
      let start = 0;
      for (let end = chunk.indexOf(0x0a); end !== -1; end = chunk.indexOf(0x0a, start)) {
        const text = utf8(decoder, Buffer.concat([...parts, chunk.subarray(start, end)]));
        parts = [];
        start = end + 1;
        yield text === undefined ? { error: "a line is not valid UTF-8: edited" } : { text };
      }
      if (start < chunk.length) parts.push(chunk.subarray(start));
    }
  } catch (error) {
    yield { error: `unreadable: ${(error as Error).message}`, file: true };
    return;
  }
  if (parts.length > 0) yield { error: "the last line has no newline: truncated or edited" };
}

function utf8(decoder: { decode(bytes: Uint8Array): string }, bytes: Uint8Array): string | undefined {
  try {
    return decoder.decode(bytes);
  } catch {
    return undefined;
  }
}

async function write(file: WriteStream, text: string): Promise<void> {
  if (!file.write(text)) await once(file, "drain");
}

function failure(position: bigint, reason: string): VerifyFailure {
  return { ok: false, position, reason };
}
