import { randomUUID } from "node:crypto";
import { extendChain, type LogHead } from "./chain.ts";
import { CHECKPOINT_TYPE, type CheckpointSigner, encodeCheckpoint } from "./checkpoint.ts";
import { CHECKPOINT_STREAM, type RecordedEvent } from "./store.ts";

/**
 * When the store signs its head: once `everyEvents` events follow the last checkpoint (checked after each append),
 * and/or once the last checkpoint is `everyMs` old and events followed it (checked by the adapter's timer).
 */
export interface CheckpointPolicy {
  signer: CheckpointSigner;
  everyEvents?: number | undefined;
  everyMs?: number | undefined;
}

/** Why a checkpoint is considered: after an append, on the policy's timer, or on request. */
export type CheckpointTrigger = "events" | "timer" | "now";

export interface CheckpointState {
  head: LogHead | undefined;
  lastCheckpoint: { position: bigint; revision: bigint; recordedAt: Date } | undefined;
  now: Date;
}

/**
 * The checkpoint event to append right after the head, or undefined when none is due. It signs the head it
 * follows, so a checkpoint at position p always states position p-1 and its hash.
 */
export function planCheckpoint(
  state: CheckpointState,
  policy: CheckpointPolicy,
  trigger: CheckpointTrigger,
): RecordedEvent | undefined {
  const { head, lastCheckpoint, now } = state;
  if (head === undefined || head.position === lastCheckpoint?.position) return undefined;
  if (!isDue(head.position - (lastCheckpoint?.position ?? 0n), lastCheckpoint?.recordedAt, now, policy, trigger)) {
    return undefined;
  }
  const signedAt = new Date(Math.max(Math.trunc(now.getTime()), head.recordedAt.getTime()));
  const signed = policy.signer.sign({ position: head.position, hash: head.hash, signedAt });
  const [checkpoint] = extendChain(
    head,
    [
      {
        stream: CHECKPOINT_STREAM,
        revision: (lastCheckpoint?.revision ?? -1n) + 1n,
        eventId: randomUUID(),
        type: CHECKPOINT_TYPE,
        data: encodeCheckpoint(signed),
        occurredAt: signedAt,
      },
    ],
    signedAt,
  );
  return checkpoint;
}

function isDue(
  eventsSince: bigint,
  lastAt: Date | undefined,
  now: Date,
  policy: CheckpointPolicy,
  trigger: CheckpointTrigger,
): boolean {
  switch (trigger) {
    case "now":
      return true;
    case "events":
      return policy.everyEvents !== undefined && eventsSince >= BigInt(policy.everyEvents);
    case "timer":
      return (
        policy.everyMs !== undefined && (lastAt === undefined || now.getTime() - lastAt.getTime() >= policy.everyMs)
      );
  }
}
