import { ApprovalService, PolicyService } from "@agentgate/events";
import { addService, bindServer, createClient, isLoopback } from "@agentgate/grpc";
import {
  type ActiveGrant,
  formatIssue,
  type Policy,
  parsePolicyDocument,
  parsePolicyYaml,
  RulesError,
} from "@agentgate/policy";
import { Server } from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import { type Logger, pino } from "pino";
import { type ActivePolicy, policyHandlers } from "./handlers.ts";
import { policyOf } from "./revision.ts";
import { readRulesText, readRulesTextSync, watchRulesFile } from "./rules-file.ts";

export interface PolicyServiceOptions {
  /** Inline rules (the `rules:` list); they never change. Give this or `rulesFile`. */
  rules?: unknown;
  /** Inline mask rules (with `rules` only). */
  masks?: unknown;
  /** Inline predicate switch, allow or refuse (with `rules` only). */
  maskedPredicates?: unknown;
  /** A YAML file with `rules: [...]`, watched while the service listens. */
  rulesFile?: string;
  /** host:port; port 0 picks a free one. */
  listen: string;
  logger?: Logger;
  /** Stat fallback for the file watch, in milliseconds (default 1000). */
  pollIntervalMs?: number;
  /** Quiet time after a change before the file is read, in milliseconds (default 100). */
  debounceMs?: number;
  /** How long close() lets running calls finish before cutting them off, in milliseconds (default 5000). */
  shutdownTimeoutMs?: number;
  /** host:port of the approval service whose grants (JIT access) the policy honours; default none. */
  grantsFrom?: string;
}

export type ReloadResult = { ok: true; revision: string } | { ok: false; error: RulesError };

export interface PolicyServer {
  /** Starts serving PolicyService and gRPC health; resolves with the bound port. */
  listen(): Promise<{ address: string; port: number }>;
  /** Stops watching, reports NOT_SERVING, ends revision streams (UNAVAILABLE), then shuts the server down. */
  close(): Promise<void>;
  /** The revision in force. */
  readonly revision: string;
  /** Reads the rules file again; a valid file is activated, an invalid one is reported and changes nothing. */
  reload(): Promise<ReloadResult>;
}

const SERVICE_NAME = PolicyService.typeName;

/**
 * The policy service: answers Decide, DescribeSession and WatchRevision from rules that live in YAML. Throws a
 * RulesError when the initial rules are invalid: the service never starts without a valid policy.
 */
export function createPolicyService(options: PolicyServiceOptions): PolicyServer {
  const { rulesFile } = options;
  if ((options.rules === undefined) === (rulesFile === undefined)) {
    throw new TypeError("createPolicyService: give either rules or rulesFile");
  }
  const logger = (options.logger ?? pino()).child({ service: "policy" });
  const source = rulesFile ?? "inline rules";
  const shutdown = new AbortController();

  let lastText = rulesFile === undefined ? undefined : readRulesTextSync(rulesFile);
  let policy: Policy = policyOf(
    lastText === undefined
      ? parsePolicyDocument({
          rules: options.rules,
          ...(options.masks === undefined ? {} : { masks: options.masks }),
          ...(options.maskedPredicates === undefined ? {} : { maskedPredicates: options.maskedPredicates }),
        })
      : parsePolicyYaml(lastText, rulesFile),
  );
  let lastResult: ReloadResult = { ok: true, revision: policy.revision };

  const waiters = new Set<() => void>();
  // Grants followed from the approval service; every change is a new generation, part of the revision.
  let grants: ActiveGrant[] = [];
  let grantGeneration = 0;
  const active: ActivePolicy = {
    get current() {
      return grantGeneration === 0 ? policy : { ...policy, revision: `${policy.revision}.g${grantGeneration}` };
    },
    get grants() {
      return grants;
    },
    changed: (signal) =>
      new Promise((resolve) => {
        if (signal.aborted) return resolve();
        const done = () => {
          waiters.delete(done);
          signal.removeEventListener("abort", done);
          resolve();
        };
        waiters.add(done);
        signal.addEventListener("abort", done);
      }),
  };

  const activate = (next: Policy) => {
    const previous = policy.revision;
    policy = next;
    logger.info({ revision: next.revision, previous, rules: next.rules.length, source }, "policy rules activated");
    for (const wake of [...waiters]) wake();
  };

  const reject = (error: RulesError): ReloadResult => {
    logger.error(
      {
        source,
        key: error.key,
        rule: error.issues[0]?.rule,
        reason: error.reason,
        issues: error.issues.map(formatIssue),
        revision: policy.revision,
      },
      `policy rules rejected, revision ${policy.revision} stays in force: ${error.message}`,
    );
    return { ok: false, error };
  };

  // Reloads run one at a time; `onlyIfChanged` (the watcher's) skips a file whose text was already judged.
  const load = async (onlyIfChanged: boolean): Promise<ReloadResult> => {
    if (rulesFile === undefined) return { ok: true, revision: policy.revision };
    let text: string;
    try {
      text = await readRulesText(rulesFile);
    } catch (error) {
      if (!(error instanceof RulesError)) throw error;
      lastText = undefined;
      return reject(error);
    }
    if (onlyIfChanged && text === lastText) return lastResult;
    lastText = text;
    try {
      const next = policyOf(parsePolicyYaml(text, rulesFile));
      if (next.revision !== policy.revision) activate(next);
      else if (!lastResult.ok)
        logger.info({ revision: policy.revision, source }, "policy rules valid again, unchanged");
      return { ok: true, revision: policy.revision };
    } catch (error) {
      if (!(error instanceof RulesError)) throw error;
      return reject(error);
    }
  };
  let queue: Promise<unknown> = Promise.resolve();
  const reload = (onlyIfChanged: boolean): Promise<ReloadResult> => {
    const run = queue.then(() => load(onlyIfChanged));
    queue = run.then((result) => {
      lastResult = result;
    }, noop);
    return run;
  };

  /** Follows the approval service's grants; while it is unreachable the last known grants stay (they expire by time). */
  const followGrants = async (address: string) => {
    const client = createClient(ApprovalService, address);
    try {
      while (!shutdown.signal.aborted) {
        try {
          for await (const { grants: list } of client.watchGrants({}, { signal: shutdown.signal })) {
            grants = list.map((g) => ({
              id: g.id,
              subject: g.principal?.subject ?? "",
              issuer: g.principal?.issuer ?? "",
              target: g.target,
              classes: g.classes,
            }));
            grantGeneration++;
            logger.info({ grants: grants.length, revision: active.current.revision }, "grants in force changed");
            for (const wake of [...waiters]) wake();
          }
        } catch (error) {
          if (shutdown.signal.aborted) break;
          logger.warn({ err: error }, "grants stream interrupted; following again");
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    } finally {
      client.close();
    }
  };
  let followingGrants: Promise<void> | undefined;

  let server: Server | undefined;
  let health: HealthImplementation | undefined;
  let watcher: { close(): void } | undefined;
  let closing: Promise<void> | undefined;

  return {
    get revision() {
      return policy.revision;
    },

    reload: () => reload(false),

    async listen() {
      if (server !== undefined || closing !== undefined) throw new Error("the policy service listens only once");
      server = new Server();
      addService(server, PolicyService, policyHandlers(active, logger), { signal: shutdown.signal, logger });
      if (options.grantsFrom !== undefined) followingGrants = followGrants(options.grantsFrom);
      health = new HealthImplementation({ "": "SERVING", [SERVICE_NAME]: "SERVING" });
      health.addToServer(server);
      const port = await bindServer(server, options.listen);
      const address = options.listen.replace(/:\d+$/, `:${port}`);
      if (!isLoopback(address)) logger.warn({ address }, "plaintext gRPC on a non-loopback address");
      if (rulesFile !== undefined) {
        watcher = watchRulesFile(rulesFile, () => void reload(true).catch(noop), {
          pollIntervalMs: options.pollIntervalMs ?? 1000,
          debounceMs: options.debounceMs ?? 100,
          logger,
        });
        void reload(true).catch(noop); // an edit between start-up and now
      }
      logger.info(
        { address, revision: policy.revision, rules: policy.rules.length, source },
        "policy service listening",
      );
      return { address, port };
    },

    close() {
      closing ??= (async () => {
        watcher?.close();
        health?.setStatus("", "NOT_SERVING");
        health?.setStatus(SERVICE_NAME, "NOT_SERVING");
        shutdown.abort();
        await followingGrants;
        if (server !== undefined) await shutdownServer(server, options.shutdownTimeoutMs ?? 5000);
        logger.info({ revision: policy.revision }, "policy service stopped");
      })();
      return closing;
    },
  };
}

function shutdownServer(server: Server, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, timeoutMs);
    timer.unref();
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function noop(): void {}
