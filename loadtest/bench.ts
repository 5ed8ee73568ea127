// The load test: pgbench against PostgreSQL directly, through the agentgate gateway, through PgBouncer and through
// a bare Node.js socket pipe, with the targets interleaved so drift on the machine hits them all alike.
// Usage and the meaning of every column: loadtest/README.md.
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { findBinary, type PostgresInstance, startPostgres } from "@agentgate/testkit";
import { clockTicksPerSecond, processTreeCpuTicks } from "./cpu.ts";
import { auditShortfall, statementsPerTransaction } from "./full-config.ts";
import { type FullComponent, fullComponents } from "./gateway-full.ts";
import { type BenchOptions, OptionError, parseBenchOptions, usage } from "./options.ts";
import { type Endpoint, initPgbench, PgbenchError, runPgbench } from "./pgbench.ts";
import { pgbouncerHint } from "./pgbouncer.ts";
import { addedLatencyTable, type Cell, fullStackTable, renderText, resultsTable, type Sample } from "./report.ts";
import { writeResultsFile } from "./results-file.ts";
import { loadAverage, systemInfo, versionOf } from "./system-info.ts";
import { startTargets, type Target } from "./targets.ts";

const postgresHint = "install PostgreSQL, which ships pgbench: apt-get install -y postgresql";

/**
 * Benchmark settings for the throwaway server. fsync, synchronous_commit and full_page_writes are off: the numbers
 * compare network paths, not disks, and a crash only loses a database that is thrown away anyway.
 */
const serverSettings: Record<string, string> = {
  shared_buffers: "256MB",
  fsync: "off",
  synchronous_commit: "off",
  full_page_writes: "off",
  max_wal_size: "4GB",
  checkpoint_timeout: "30min",
  max_connections: "100",
};

/**
 * What pgbench does before a run unless told -n, done here over a direct connection so every target starts a
 * TPC-B-like run from the same state; then a checkpoint, so that one is less likely to land inside the run.
 */
async function resetPgbenchTables(postgres: PostgresInstance, dbname: string): Promise<void> {
  for (const sql of ["VACUUM pgbench_branches", "VACUUM pgbench_tellers", "TRUNCATE pgbench_history", "CHECKPOINT"]) {
    await postgres.query(sql, [], dbname);
  }
}

const log = (line: string) => process.stderr.write(`${line}\n`);

/** Cleanup steps, run last-in first-out whatever happens. */
function cleanupStack() {
  const steps: Array<() => Promise<void>> = [];
  return {
    push(step: () => Promise<void>) {
      steps.push(step);
    },
    async run() {
      for (const step of steps.reverse()) {
        try {
          await step();
        } catch (error) {
          log(`cleanup failed: ${error instanceof Error ? error.message : String(error)}`);
        }
      }
      steps.length = 0;
    },
  };
}

function cellsFor(options: BenchOptions): Cell[] {
  return options.workloads.flatMap((workload) =>
    options.protocols.flatMap((protocol) =>
      options.clients.map((clients) => ({ workload, protocol, clients, samples: new Map(), errors: new Map() })),
    ),
  );
}

/** The targets starting at a different one for each round and cell, so no target always runs first. */
function rotate<T>(items: T[], by: number): T[] {
  const start = by % items.length;
  return [...items.slice(start), ...items.slice(0, start)];
}

function push<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  map.set(key, [...(map.get(key) ?? []), value]);
}

/** A run whose numbers must not be used although pgbench succeeded: its audit is missing statements. */
class AuditError extends Error {
  override name = "AuditError";
}

/** CPU ticks used so far by each process. */
function ticksOf(pids: Partial<Record<FullComponent, number>>): Partial<Record<FullComponent, number>> {
  return Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, processTreeCpuTicks(pid)]));
}

/** Where pgbench connects; a full-stack target's password is a fresh token (they expire). */
async function endpointFor(target: Target): Promise<Endpoint> {
  const full = target.full;
  return full === undefined ? target.endpoint : { ...target.endpoint, password: await full.stack.token(full.clientId) };
}

/**
 * Not measured: each target runs every workload and protocol of the matrix briefly before the first round, so no
 * measured run pays for first-time work (JIT compilation, the gateway's catalog, cached policy decisions, the
 * verifier's JWKS). A full stack's audit is then let catch up, so its backlog is not charged to the first run.
 */
async function warmUp(
  targets: Target[],
  options: BenchOptions,
  tools: { pgbench: string },
  reset: () => Promise<void>,
  signal: AbortSignal,
): Promise<void> {
  for (const target of targets) {
    const mark = await target.full?.stack.auditMark();
    for (const workload of options.workloads) {
      for (const protocol of options.protocols) {
        if (workload === "tpcb") await reset();
        const clients = Math.min(4, Math.max(...options.clients));
        try {
          await runPgbench({
            pgbench: tools.pgbench,
            endpoint: await endpointFor(target),
            workload,
            protocol,
            clients,
            threads: Math.min(clients, availableParallelism()),
            durationSeconds: options.durationSeconds,
            transactions: 100,
            signal,
          });
        } catch (error) {
          if (!(error instanceof PgbenchError)) throw error;
          log(
            `warm-up ${workload} ${protocol} ${target.name}: FAILED ${error.output.split("\n").slice(-2).join(" / ")}`,
          );
        }
      }
    }
    if (target.full !== undefined && mark !== undefined) await target.full.stack.settle(mark, 0, Date.now(), () => {});
  }
}

async function measure(
  target: Target,
  cell: Cell,
  tools: { pgbench: string },
  options: BenchOptions,
  clockTicks: number,
  signal: AbortSignal,
): Promise<Sample> {
  const full = target.full;
  // The proxy of every target; for gateway-full every process of the stack.
  const pids: Partial<Record<FullComponent, number>> =
    full !== undefined ? full.stack.pids : target.pid === undefined ? {} : { proxy: target.pid };
  const endpoint = await endpointFor(target);
  const mark = await full?.stack.auditMark();
  const before = ticksOf(pids);
  const result = await runPgbench({
    pgbench: tools.pgbench,
    endpoint,
    workload: cell.workload,
    protocol: cell.protocol,
    clients: cell.clients,
    threads: Math.min(cell.clients, availableParallelism()),
    durationSeconds: options.durationSeconds,
    signal,
  }).catch(async (error: unknown) => {
    // What a failed run did send is still being stored: let it land before the next run's mark is taken.
    if (full !== undefined && mark !== undefined && !signal.aborted)
      await full.stack.settle(mark, 0, Date.now(), () => {});
    throw error;
  });
  const endedAt = Date.now();
  let after: Partial<Record<FullComponent, number>> = {};
  let audit: Sample["audit"];
  if (full === undefined || mark === undefined) after = ticksOf(pids);
  else {
    // The run's cost includes storing its audit: CPU is read once the store has caught up.
    const expected = result.transactions * statementsPerTransaction(cell.workload);
    audit = await full.stack.settle(mark, expected, endedAt, () => {
      after = ticksOf(pids);
    });
    const shortfall = auditShortfall(audit);
    if (shortfall !== undefined) throw new AuditError(`${result.tps.toFixed(0)} tps, but ${shortfall}`);
  }
  if (result.transactions === 0) return { ...result, ...(audit ? { audit } : {}) };
  const perTxn = (name: FullComponent) => {
    const used = (after[name] ?? 0) - (before[name] ?? 0);
    return (used * 1e6) / clockTicks / result.transactions;
  };
  const components = Object.fromEntries(
    fullComponents.filter((name) => pids[name] !== undefined).map((name) => [name, perTxn(name)]),
  );
  return {
    ...result,
    ...(pids.proxy === undefined ? {} : { cpuMicrosPerTxn: perTxn("proxy") }),
    ...(full === undefined ? {} : { components }),
    ...(audit === undefined ? {} : { audit }),
  };
}

function describeSample(sample: Sample): string {
  const cpu = sample.cpuMicrosPerTxn === undefined ? "" : `  ${sample.cpuMicrosPerTxn.toFixed(1)} CPU µs/txn`;
  const parts = Object.entries(sample.components ?? {})
    .filter(([name]) => name !== "proxy")
    .map(([name, micros]) => `${name} ${micros.toFixed(1)}`);
  const components = parts.length === 0 ? "" : ` (${parts.join(", ")})`;
  const audit =
    sample.audit === undefined
      ? ""
      : `  audit ${sample.audit.recorded}/${sample.audit.expected} stmts, lag ${(sample.audit.lagMs / 1000).toFixed(1)} s`;
  const failed = sample.failed > 0 ? `  ${sample.failed} failed txns` : "";
  return `${sample.tps.toFixed(0)} tps  ${sample.latencyMs.toFixed(3)} ms${cpu}${components}${audit}${failed}`;
}

async function bench(options: BenchOptions, argv: string[], signal: AbortSignal): Promise<void> {
  const cleanup = cleanupStack();
  const loadAtStart = loadAverage();
  try {
    const tools = {
      pgbench: findBinary("pgbench", postgresHint),
      ...(options.targets.includes("pgbouncer") ? { pgbouncer: findBinary("pgbouncer", pgbouncerHint) } : {}),
    };
    const clockTicks = clockTicksPerSecond();
    const postgres = await startPostgres({ settings: serverSettings });
    cleanup.push(() => postgres.stop());
    signal.throwIfAborted();
    const dbname = await postgres.createDatabase();
    const direct = {
      host: postgres.host,
      port: postgres.port,
      user: postgres.user,
      password: postgres.password,
      dbname,
    };
    log(`PostgreSQL on ${postgres.host}:${postgres.port}, database ${dbname}; pgbench -i -s ${options.scale}`);
    await initPgbench(tools.pgbench, direct, options.scale, signal);
    const notes: string[] = [];
    const targets = await startTargets({
      names: options.targets,
      direct,
      directUrl: postgres.url(dbname),
      pgbouncer: tools.pgbouncer,
      maxClients: Math.max(...options.clients),
      // Tokens are fetched for each run; one must outlive its run, since the gateway ends a session at expiry.
      full: { bench: postgres, tokenTtlSeconds: options.durationSeconds + 600, log },
      onStarted: (name, server) => {
        cleanup.push(() => server.stop());
        log(`${name} listening on ${server.host}:${server.port} (pid ${server.pid})`);
      },
      onNote: (note) => {
        notes.push(note);
        log(note);
      },
    });
    signal.throwIfAborted();
    log("warm-up: every target runs each workload and protocol briefly (not measured)");
    await warmUp(targets, options, tools, () => resetPgbenchTables(postgres, dbname), signal);

    const cells = cellsFor(options);
    const names = targets.map((target) => target.name);
    for (let round = 0; round < options.rounds; round++) {
      for (const [index, cell] of cells.entries()) {
        for (const target of rotate(targets, round + index)) {
          if (cell.workload === "tpcb") await resetPgbenchTables(postgres, dbname);
          const label = `round ${round + 1}/${options.rounds}  ${cell.workload} ${cell.protocol} ${cell.clients}c  ${target.name}`;
          try {
            const sample = await measure(target, cell, tools, options, clockTicks, signal);
            push(cell.samples, target.name, sample);
            log(`${label}: ${describeSample(sample)}`);
          } catch (error) {
            if (!(error instanceof PgbenchError || error instanceof AuditError)) throw error;
            const reason =
              error instanceof PgbenchError
                ? `${error.message}: ${error.output.split("\n").slice(-3).join(" / ")}`
                : error.message;
            push(cell.errors, target.name, reason);
            log(`${label}: FAILED ${reason}`);
          }
        }
      }
    }

    const info = systemInfo(loadAtStart, {
      postgres: `PostgreSQL ${postgres.version}`,
      pgbench: versionOf(tools.pgbench),
      pgbouncer: tools.pgbouncer === undefined ? "not run" : versionOf(tools.pgbouncer),
    });
    process.stdout.write(`\n${renderText(resultsTable(cells, names))}\n`);
    const full = fullStackTable(cells, names);
    if (full.rows.length > 0) {
      process.stdout.write(`\nfull stack: CPU µs per statement of each process, the audit's count\n`);
      process.stdout.write(`${renderText(full)}\n`);
    }
    if (options.clients.includes(1)) {
      process.stdout.write(`\nmean latency added to direct at 1 client (ms)\n`);
      process.stdout.write(`${renderText(addedLatencyTable(cells, names))}\n`);
    }
    const outFile = writeResultsFile(fileURLToPath(new URL("./out/", import.meta.url)), {
      info,
      options,
      argv,
      serverSettings,
      cells,
      targets: names,
      notes,
    });
    process.stdout.write(`\n${notes.map((note) => `${note}\n`).join("")}Markdown report: ${outFile}\n`);
  } finally {
    await cleanup.run();
  }
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let options: BenchOptions | undefined;
  try {
    options = parseBenchOptions(argv);
  } catch (error) {
    if (!(error instanceof OptionError || (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS"))) {
      throw error;
    }
    log((error as Error).message);
    process.exitCode = 2;
    return;
  }
  if (options === undefined) {
    process.stdout.write(`${usage}\n`);
    return;
  }
  const controller = new AbortController();
  // Stay subscribed after the first signal: while we listen, the test kit leaves shutdown to us (a second signal
  // exits at once; the test kit's exit hook and setpriv's parent-death signal then take the servers down).
  const interrupt = (signalName: NodeJS.Signals) => {
    if (controller.signal.aborted) {
      log(`${signalName} again: exiting now`);
      process.exit(130);
    }
    log(`${signalName}: stopping pgbench and every server this run started`);
    controller.abort(new Error(`interrupted by ${signalName}`));
  };
  process.on("SIGINT", interrupt);
  process.on("SIGTERM", interrupt);
  try {
    await bench(options, argv, controller.signal);
  } catch (error) {
    if (controller.signal.aborted) {
      log("interrupted; every server this run started is stopped");
      process.exitCode = 130;
      return;
    }
    log(error instanceof Error ? (error.stack ?? error.message) : String(error));
    if (error instanceof PgbenchError) log(error.output);
    process.exitCode = 1;
  } finally {
    process.off("SIGINT", interrupt);
    process.off("SIGTERM", interrupt);
  }
}

await main();
