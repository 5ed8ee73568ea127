import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { type AddressInfo, createServer, type Server, type Socket } from "node:net";
import { hostname } from "node:os";
import { createSecureContext, type SecureContext } from "node:tls";
import { type AuditPublisher, createAuditPublisher } from "@agentgate/bus";
import { type Config, ConfigError, resolveTargets, type Target } from "@agentgate/config";
import { createTokenVerifier, type TokenVerifier } from "@agentgate/identity";
import { createHasher } from "@agentgate/masking/hmac";
import { initSqlAnalysis } from "@agentgate/sql";
import { type Logger, pino } from "pino";
import { workerHeartbeat } from "./audit.ts";
import { CancelRegistry } from "./cancel.ts";
import { type ApprovalPort, createGrpcApprovals } from "./enforce/approvals.ts";
import { TargetCatalog } from "./enforce/catalog.ts";
import { createGrpcPolicy } from "./enforce/grpc-policy.ts";
import type { PolicyPort } from "./enforce/policy.ts";
import type { MaskingForTarget, SessionContext } from "./session/context.ts";
import { ClientSession, type SessionInfo } from "./session/session.ts";
import { ProxyStats } from "./stats.ts";
import { upstreamTlsOptions } from "./upstream-tls.ts";

export interface ProxyOptions {
  config: Config;
  logger?: Logger;
  /** Checks tokens; by default one is created from `config.identity` when the proxy starts listening. */
  verifier?: TokenVerifier;
  /** Decides statements; by default a gRPC client of `config.proxy.policy.address`, when configured. */
  policy?: PolicyPort;
  /** Records statements; by default a JetStream publisher to `config.proxy.audit.nats`, when configured. */
  publisher?: AuditPublisher;
  /** Where statements wait for approval; by default a gRPC client of `config.proxy.approval.address`, when configured. */
  approvals?: ApprovalPort;
}

/** A proxy worker: accepts PostgreSQL clients and relays each to its target. */
export interface ProxyWorker {
  /** Starts listening on the configured address (port 0 picks a free one). */
  listen(): Promise<AddressInfo>;
  /** Stops accepting, lets sessions finish what they run (up to drainTimeoutMs), then closes the rest. */
  close(options?: { drainTimeoutMs?: number }): Promise<void>;
  readonly sessionCount: number;
  readonly workerId: string;
  stats(): ReturnType<ProxyStats["snapshot"]>;
  /** The sessions this worker holds now. */
  sessions(): SessionInfo[];
}

const TERMINATE_GRACE_MS = 1000;
/** The heartbeat interval when the publisher is given rather than configured (config: proxy.audit.heartbeatMs). */
const DEFAULT_HEARTBEAT_MS = 10_000;

const delay = (ms: number) => new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), ms).unref());

export function createProxy(options: ProxyOptions): ProxyWorker {
  const { config } = options;
  const workerId = config.proxy.workerId ?? `${hostname()}:${process.pid}`;
  const logger = (options.logger ?? pino({ level: config.log.level })).child({ worker: workerId });
  const shutdown = new AbortController();
  const sessions = new Set<ClientSession>();
  const targets = resolveTargets(config);
  const stats = new ProxyStats();
  const upstreamTls = upstreamTlsOptions(targets);
  const catalogs = new Map(
    [...targets.values()].map((t) => [t.name, new TargetCatalog(t, upstreamTls.get(t.name), logger)] as const),
  );
  // Masking code and each target's catalog are loaded when the first session of a policy-governed proxy needs them.
  const maskingByTarget = new Map<string, Promise<MaskingForTarget>>();
  const masking = (target: Target): Promise<MaskingForTarget> => {
    let loaded = maskingByTarget.get(target.name);
    if (loaded === undefined) {
      loaded = Promise.all([import("./mask/catalog.ts"), import("./mask/planner.ts")]).then(
        ([{ MaskCatalog }, { SessionMasking }]) => ({
          catalog: new MaskCatalog(target, upstreamTls.get(target.name), logger),
          SessionMasking,
        }),
      );
      maskingByTarget.set(target.name, loaded);
    }
    return loaded;
  };
  const hashKey = config.proxy.masking?.hashKey;
  if (hashKey === undefined && config.proxy.policy !== undefined) {
    logger.warn("proxy.masking.hashKey is not set: hashed values are keyed per process and differ between workers");
  }
  const hasher = createHasher(hashKey === undefined ? randomBytes(32) : Buffer.from(hashKey, "utf8"));
  let verifier = options.verifier;
  let publisher = options.publisher;
  const policyConfig = config.proxy.policy;
  const policy =
    options.policy ??
    (policyConfig && createGrpcPolicy({ address: policyConfig.address, deadlineMs: policyConfig.deadlineMs, logger }));
  const approvalConfig = config.proxy.approval;
  const approvals = approvalConfig && {
    port:
      options.approvals ??
      createGrpcApprovals({
        address: approvalConfig.address,
        deadlineMs: approvalConfig.deadlineMs,
        workerId,
        logger,
      }),
    timeoutMs: approvalConfig.timeoutMs,
    mode: approvalConfig.mode,
  };
  const ctx: SessionContext = {
    config: config.proxy,
    targets,
    upstreamTls,
    catalogs,
    masking: config.proxy.policy === undefined && options.policy === undefined ? undefined : masking,
    hasher,
    logger,
    tls: config.proxy.tls && loadTls(config.proxy.tls),
    cancels: new CancelRegistry(),
    shutdown: shutdown.signal,
    get verifier() {
      return verifier;
    },
    stats,
    policy,
    approvals,
    get publisher() {
      return publisher;
    },
    workerId,
  };

  const server: Server = createServer({ noDelay: true, keepAlive: true, pauseOnConnect: false }, (socket: Socket) => {
    const session = new ClientSession(socket, ctx);
    sessions.add(session);
    session.closed.then(() => sessions.delete(session));
    stats.connectionsAccepted++;
    session.start();
  });
  server.on("error", (error) => logger.error({ err: error }, "listener error"));

  // Liveness for the audit: a worker that dies without ending its sessions is found by its silence.
  let heartbeat: NodeJS.Timeout | undefined;
  const startHeartbeat = (bus: AuditPublisher, intervalMs: number) => {
    if (heartbeat !== undefined) return;
    const startedAt = new Date();
    const beat = () => {
      const event = workerHeartbeat(workerId, intervalMs, sessions.size, startedAt);
      bus.publishForWorker(workerId, event).catch((error: unknown) => {
        logger.debug({ err: error }, "worker heartbeat not stored");
      });
    };
    beat();
    heartbeat = setInterval(beat, intervalMs).unref();
  };

  return {
    workerId,
    get sessionCount() {
      return sessions.size;
    },
    stats: () => stats.snapshot(),
    sessions: () => [...sessions].map((s) => s.describe()),
    async listen() {
      if (verifier === undefined && config.identity !== undefined) {
        verifier = await createTokenVerifier({ ...config.identity, allowInsecureLoopbackIssuer: true });
      }
      if (verifier === undefined) logger.warn("no identity provider configured: admitting loopback clients only");
      const audit = config.proxy.audit;
      if (publisher === undefined && audit !== undefined) {
        publisher = await createAuditPublisher({
          servers: audit.nats,
          ackTimeoutMs: audit.ackTimeoutMs,
          replicas: audit.replicas,
          onStatus: (status) => logger.info({ status: status.type }, "audit bus connection"),
        }).catch((cause: unknown) => {
          // Fail closed: a gateway that cannot record statements does not start.
          const why = cause instanceof Error ? cause.message : String(cause);
          throw new Error(`cannot reach the audit bus (proxy.audit.nats): ${why}`, { cause });
        });
      }
      if (publisher === undefined) logger.warn("no audit bus configured: statements are not recorded");
      else startHeartbeat(publisher, config.proxy.audit?.heartbeatMs ?? DEFAULT_HEARTBEAT_MS);
      if (policy === undefined) logger.warn("no policy service configured: every statement passes");
      else await initSqlAnalysis();
      const { host, port } = splitHostPort(config.proxy.listen);
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen({ host, port }, () => {
          server.off("error", reject);
          const address = server.address() as AddressInfo;
          logger.info({ address: `${address.address}:${address.port}` }, "proxy listening");
          resolve(address);
        });
      });
    },
    async close({ drainTimeoutMs = config.proxy.drainTimeoutMs } = {}) {
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      shutdown.abort();
      logger.info({ sessions: sessions.size, drainTimeoutMs }, "draining sessions");
      for (const session of sessions) session.drain();
      const allClosed = () => Promise.all([...sessions].map((s) => s.closed)).then(() => "closed" as const);
      if ((await Promise.race([allClosed(), delay(drainTimeoutMs)])) === "timeout") {
        logger.warn({ sessions: sessions.size }, "drain timed out: closing remaining sessions");
        for (const session of sessions) session.terminate();
        // Peers get a moment to read their error and close; whoever does not is dropped.
        if ((await Promise.race([allClosed(), delay(TERMINATE_GRACE_MS)])) === "timeout") {
          for (const session of sessions) session.destroy();
          await allClosed();
        }
      }
      await stopped;
      // Beats until its sessions have ended (a long drain must not look like a lost worker).
      clearInterval(heartbeat);
      policy?.close();
      approvals?.port.close();
      if (options.publisher === undefined) await publisher?.close();
      logger.info("proxy stopped");
    },
  };
}

function loadTls(files: { cert: string; key: string }): SecureContext {
  const read = (key: "cert" | "key") => {
    try {
      return readFileSync(files[key]);
    } catch (cause) {
      throw new ConfigError(`proxy.tls.${key}`, `cannot read ${files[key]}: ${(cause as NodeJS.ErrnoException).code}`);
    }
  };
  try {
    return createSecureContext({ cert: read("cert"), key: read("key"), minVersion: "TLSv1.2" });
  } catch (cause) {
    if (cause instanceof ConfigError) throw cause;
    throw new ConfigError("proxy.tls", "certificate and key do not form a usable TLS identity", { cause });
  }
}

export function splitHostPort(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(":");
  return { host: listen.slice(0, i).replace(/^\[(.*)\]$/, "$1"), port: Number(listen.slice(i + 1)) };
}
