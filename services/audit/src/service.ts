import { readFileSync } from "node:fs";
import { createCheckpointSigner, createPostgresEventStore, type PostgresEventStore } from "@agentgate/eventstore";
import type { Logger } from "pino";
import type { AuditConfig } from "./config.ts";
import { createIngester, type Ingester } from "./ingester/ingester.ts";
import { createLivenessSweeper } from "./liveness.ts";
import { createProjector, type Projector } from "./projections/projector.ts";

export interface AuditService {
  readonly store: PostgresEventStore;
  readonly ingester: Ingester;
  readonly projector: Projector;
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The audit service as configured: the ingester (bus → event store, signing checkpoints with `signingKey`) and the
 * read model projector. The event store schema must exist (`migrate` from @agentgate/eventstore, as its owner).
 */
export function createAuditService(config: AuditConfig, logger: Logger): AuditService {
  const store = createPostgresEventStore({
    connectionString: config.store,
    schema: config.schema,
    signer:
      config.signingKey === undefined ? undefined : createCheckpointSigner(readFileSync(config.signingKey, "utf8")),
    onBackgroundError: (error) => logger.warn({ err: error }, "timed checkpoint failed; the next tick retries"),
  });
  const projector = createProjector({
    connectionString: config.readStore ?? config.store,
    schema: config.readSchema,
    eventStore: store,
    logger: logger.child({ component: "projector" }),
  });
  const ingester = createIngester({
    natsServers: config.nats,
    eventStore: store,
    durable: config.durable,
    replicas: config.replicas,
    logger: logger.child({ component: "ingester" }),
  });
  const liveness =
    config.livenessIntervalMs === 0
      ? undefined
      : createLivenessSweeper({
          connectionString: config.readStore ?? config.store,
          schema: config.readSchema,
          eventStore: store,
          projector,
          backlog: () => ingester.backlog(),
          intervalMs: config.livenessIntervalMs,
          logger: logger.child({ component: "liveness" }),
        });
  return {
    store,
    ingester,
    projector,
    async start() {
      await projector.start();
      await ingester.start();
      liveness?.start();
    },
    async stop() {
      await liveness?.stop();
      await ingester.stop();
      await projector.stop();
      await store.close();
    },
  };
}
