import type { ConnectionOptions, SecureContext } from "node:tls";
import type { AuditPublisher } from "@agentgate/bus";
import type { ProxyConfig, Target } from "@agentgate/config";
import type { TokenVerifier } from "@agentgate/identity";
import type { Hasher } from "@agentgate/masking/hmac";
import type { Logger } from "pino";
import type { CancelRegistry } from "../cancel.ts";
import type { ApprovalPort } from "../enforce/approvals.ts";
import type { TargetCatalog } from "../enforce/catalog.ts";
import type { PolicyPort } from "../enforce/policy.ts";
import type { MaskCatalog } from "../mask/catalog.ts";
import type { SessionMasking } from "../mask/planner.ts";
import type { ProxyStats } from "../stats.ts";

/** A target's masking catalog and the planner class, as `SessionContext.masking` loads them. */
export interface MaskingForTarget {
  catalog: MaskCatalog;
  SessionMasking: typeof SessionMasking;
}

/** What every session of one proxy shares. */
export interface SessionContext {
  readonly config: ProxyConfig;
  readonly targets: ReadonlyMap<string, Target>;
  readonly logger: Logger;
  readonly tls: SecureContext | undefined;
  readonly cancels: CancelRegistry;
  /** TLS options per target name; absent for plain TCP. */
  readonly upstreamTls: ReadonlyMap<string, ConnectionOptions>;
  /** Aborted when the proxy shuts down. */
  readonly shutdown: AbortSignal;
  /** Checks agents' tokens; undefined when no identity provider is configured (loopback-only development mode). */
  readonly verifier: TokenVerifier | undefined;
  readonly stats: ProxyStats;
  /** Decides statements; undefined when no policy service is configured (every statement passes). */
  readonly policy: PolicyPort | undefined;
  /** Where require_approval statements wait; undefined when no approval service is configured. */
  readonly approvals: { port: ApprovalPort; timeoutMs: number; mode: "wait" | "deferred" } | undefined;
  /** The audit bus; undefined when none is configured (nothing is recorded). */
  readonly publisher: AuditPublisher | undefined;
  /** Each target's own functions and their volatility, for the SQL analysis. */
  readonly catalogs: ReadonlyMap<string, TargetCatalog>;
  /**
   * Masking for a target's sessions: its catalog and the planner, loaded on first use (only proxies with a policy
   * mask, and the others need not carry the code).
   */
  readonly masking: ((target: Target) => Promise<MaskingForTarget>) | undefined;
  /** The keyed hash behind the `hash` mask strategy. */
  readonly hasher: Hasher;
  readonly workerId: string;
}
