import { AUDIT_STREAM, AUDIT_SUBJECTS } from "@agentgate/bus";
import {
  AckPolicy,
  type ConsumerConfig,
  type ConsumerInfo,
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  type JetStreamManager,
  ReplayPolicy,
} from "@nats-io/jetstream";
import { nanos } from "@nats-io/transport-node";

export interface ConsumerSettings {
  durable: string;
  ackWaitMs: number;
  /** Delivered but unacknowledged messages the server allows at once. */
  maxAckPending: number;
}

function consumerConfig(settings: ConsumerSettings, startSequence?: number): Partial<ConsumerConfig> {
  return {
    durable_name: settings.durable,
    description: "agentgate audit ingester: appends every audit event to the event store",
    ack_policy: AckPolicy.Explicit,
    ack_wait: nanos(settings.ackWaitMs),
    max_deliver: -1,
    max_ack_pending: settings.maxAckPending,
    filter_subject: AUDIT_SUBJECTS,
    replay_policy: ReplayPolicy.Instant,
    ...(startSequence === undefined
      ? { deliver_policy: DeliverPolicy.All }
      : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: startSequence }),
  };
}

/** Creates the durable pull consumer, or brings its ack settings up to date. */
export async function ensureConsumer(jsm: JetStreamManager, settings: ConsumerSettings): Promise<ConsumerInfo> {
  const info = await consumerInfo(jsm, settings.durable);
  if (info === undefined) return jsm.consumers.add(AUDIT_STREAM, consumerConfig(settings));
  const { config } = info;
  if (
    config.ack_wait !== nanos(settings.ackWaitMs) ||
    config.max_ack_pending !== settings.maxAckPending ||
    config.max_deliver !== -1
  ) {
    return jsm.consumers.update(AUDIT_STREAM, settings.durable, {
      ack_wait: nanos(settings.ackWaitMs),
      max_ack_pending: settings.maxAckPending,
      max_deliver: -1,
    });
  }
  return info;
}

export interface Realignment {
  /** Messages delivered earlier and not acknowledged when we looked. */
  pending: number;
  /** Set when the consumer was re-created to deliver again from this stream sequence. */
  restartedAt?: number;
}

/**
 * Makes sure nothing delivered earlier is still unacknowledged before the ingester asks for more. Such messages
 * belong to an ingester that crashed, or were lost on the way during a reconnect; JetStream would redeliver them only
 * after their ack wait, behind newer ones, and a session's events would reach the store out of order. Re-creating
 * the durable at its ack floor delivers them again at once and in stream order (those stored already are skipped
 * by the store, by event id). Only one ingester may use a durable (it assumes what it holds is all there is).
 */
export async function realign(jsm: JetStreamManager, settings: ConsumerSettings): Promise<Realignment> {
  const info = await ensureConsumer(jsm, settings);
  if (info.num_ack_pending === 0) return { pending: 0 };
  const restartedAt = info.ack_floor.stream_seq + 1;
  await jsm.consumers.delete(AUDIT_STREAM, settings.durable);
  await jsm.consumers.add(AUDIT_STREAM, consumerConfig(settings, restartedAt));
  return { pending: info.num_ack_pending, restartedAt };
}

async function consumerInfo(jsm: JetStreamManager, durable: string): Promise<ConsumerInfo | undefined> {
  try {
    return await jsm.consumers.info(AUDIT_STREAM, durable);
  } catch (error) {
    if (error instanceof JetStreamApiError && error.code === JetStreamApiCodes.ConsumerNotFound) return undefined;
    throw error;
  }
}
