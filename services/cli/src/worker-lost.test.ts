// A proxy worker killed with its sessions open: its heartbeats stop, and the audit service records those sessions
// as ended (worker lost) in the event store, where `agentgate replay` shows it; a worker restarted under the same id
// ends its previous run's sessions the same way at once. Sessions of live workers stay open. Real proxy processes
// (`agentgate proxy`), killed with SIGKILL; real NATS, PostgreSQL and the audit service.
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type AuditService, createAuditService, createLivenessSweeper, loadAuditConfig } from "@agentgate/audit";
import { eventually, type StoreDatabase, storeDatabase } from "@agentgate/audit/testing";
import { decodeEvent } from "@agentgate/bus";
import { SessionEndReason } from "@agentgate/events";
import {
  type FreshDatabase,
  freePort,
  freshDatabase,
  type NatsInstance,
  type OidcProviderInstance,
  spawnServer,
  startNats,
  startOidcProvider,
  waitForPort,
} from "@agentgate/testkit";
import pg from "pg";
import { pino } from "pino";
import { runReplay } from "./replay.ts";
import { agentgateBin } from "./testing.ts";

const dir = mkdtempSync(join(tmpdir(), "agentgate-worker-lost-"));

interface Proxy {
  port: number;
  child: ChildProcess;
}

describe("a proxy worker that dies with sessions open", { timeout: 120_000 }, () => {
  let nats: NatsInstance;
  let database: StoreDatabase;
  let target: FreshDatabase;
  let idp: OidcProviderInstance;
  let service: AuditService;
  let config: string;
  let readDb: pg.Client;
  const proxies: ChildProcess[] = [];

  async function startProxy(workerId: string, heartbeatMs: number): Promise<Proxy> {
    const port = await freePort();
    const file = join(dir, `${workerId}-${port}.yaml`);
    writeFileSync(
      file,
      [
        "proxy:",
        `  listen: "127.0.0.1:${port}"`,
        `  workerId: ${JSON.stringify(workerId)}`,
        "  audit:",
        `    nats: ${JSON.stringify(nats.url)}`,
        `    heartbeatMs: ${heartbeatMs}`,
        "  allowPlaintextLoopback: true",
        "identity:",
        `  issuer: ${JSON.stringify(idp.issuer)}`,
        "  audience: agentgate",
        "targets:",
        "  app:",
        `    url: ${JSON.stringify(target.url)}`,
        "",
      ].join("\n"),
      { mode: 0o600 },
    );
    const child = spawnServer(process.execPath, [agentgateBin, "proxy", "--config", file], {
      unprivileged: false,
      stdio: "ignore",
    });
    proxies.push(child);
    await waitForPort(port, child, "agentgate proxy");
    return { port, child };
  }

  async function clientOf(proxy: Proxy): Promise<pg.Client> {
    const client = new pg.Client({
      host: "127.0.0.1",
      port: proxy.port,
      user: "agent",
      database: "app",
      password: await idp.token("agent"),
    });
    client.on("error", () => {}); // the proxy is killed under it
    await client.connect();
    await client.query("SELECT 1");
    return client;
  }

  async function kill(proxy: Proxy): Promise<void> {
    const exited = new Promise((resolve) => proxy.child.once("exit", resolve));
    proxy.child.kill("SIGKILL");
    await exited;
  }

  const sessionsOf = async (workerId: string) =>
    (
      await readDb.query<{ session_id: string; ended_at: Date | null; end_reason: string | null; end_detail: string }>(
        "SELECT session_id, ended_at, end_reason, end_detail FROM agentgate_read.sessions WHERE worker_id = $1",
        [workerId],
      )
    ).rows;

  const streamOf = async (sessionId: string) => {
    const events = [];
    for await (const event of service.store.readStream(`session-${sessionId}`)) events.push(event);
    return events;
  };

  before(async () => {
    [nats, database, target, idp] = await Promise.all([
      startNats(),
      storeDatabase(),
      freshDatabase(),
      startOidcProvider({
        audience: "agentgate",
        clients: [{ clientId: "agent", clientSecret: "agent-secret", groups: ["agents"] }],
      }),
    ]);
    const store = await database.openStore();
    await store.close();
    config = join(dir, "agentgate.yaml");
    writeFileSync(
      config,
      [
        "audit:",
        `  nats: ${nats.url}`,
        `  store: ${JSON.stringify(database.writerUrl)}`,
        `  schema: ${store.schema}`,
        `  readStore: ${JSON.stringify(database.db.url)}`,
        "  livenessIntervalMs: 200",
        "",
      ].join("\n"),
    );
    service = createAuditService(loadAuditConfig(config), pino({ level: process.env.AGENTGATE_TEST_LOG ?? "silent" }));
    await service.start();
    readDb = new pg.Client({ connectionString: database.db.url });
    await readDb.connect();
  });

  after(async () => {
    for (const child of proxies) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await readDb?.end();
    await service?.stop();
    await Promise.allSettled([nats?.stop(), database?.drop(), target?.drop(), idp?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it("records its sessions as ended (worker lost) once its heartbeats stop; a live worker's stay open", async () => {
    const live = await startProxy("worker-live", 200);
    const doomed = await startProxy("worker-doomed", 200);
    const stays = await clientOf(live);
    const lost = await clientOf(doomed);
    await eventually("both sessions are in the read model", async () => {
      await service.projector.catchUp();
      return (await sessionsOf("worker-live")).length === 1 && (await sessionsOf("worker-doomed")).length === 1;
    });
    const killedAt = Date.now();
    await kill(doomed);
    await eventually(
      "the killed worker's session is ended",
      async () => (await sessionsOf("worker-doomed"))[0]?.end_reason === "worker_lost",
      30_000,
    );
    const [row] = await sessionsOf("worker-doomed");
    assert.match(row!.end_detail, /^worker worker-doomed sent no heartbeat after /);
    // The end is dated when the silence reached three intervals: the last heartbeat (before the kill) plus 600 ms.
    const { rows: beats } = await readDb.query<{ last_heartbeat: Date }>(
      "SELECT last_heartbeat FROM agentgate_read.workers WHERE worker_id = 'worker-doomed'",
    );
    const lastBeat = beats[0]!.last_heartbeat.getTime();
    assert.ok(lastBeat <= killedAt, "the last heartbeat came before the kill");
    assert.equal(row!.ended_at!.getTime(), lastBeat + 600);
    // The loss is an event in the session's stream of the tamper-evident store, not only a read-model row.
    const events = await streamOf(row!.session_id);
    const last = events.at(-1)!;
    assert.equal(last.type, "agentgate.v1.SessionEnded");
    const ended = decodeEvent(last.type, last.data);
    assert.equal(ended.$typeName === "agentgate.v1.SessionEnded" && ended.reason, SessionEndReason.WORKER_LOST);
    assert.equal(ended.meta?.sessionId, row!.session_id);
    assert.equal(ended.meta?.workerId, "worker-doomed");
    assert.equal(ended.meta?.target, "app");
    const started = decodeEvent(events[0]!.type, events[0]!.data);
    assert.equal(started.$typeName, "agentgate.v1.SessionStarted");
    assert.deepEqual(ended.meta?.principal, started.meta?.principal, "the session's principal");
    assert.equal(ended.meta?.principal?.subject, "agent");
    assert.deepEqual(ended.meta?.principal?.groups, ["agents"]);
    // A few more sweeps: the loss is recorded once, and the live worker's session is still open.
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal((await streamOf(row!.session_id)).length, events.length);
    const [open] = await sessionsOf("worker-live");
    assert.equal(open!.ended_at, null, "the live worker's session stays open");
    await stays.query("SELECT 1");
    // replay shows it.
    let out = "";
    const code = await runReplay([row!.session_id, "--config", config], {
      out: { write: (text: string) => (out += text) },
      err: { write: () => {} },
    });
    assert.equal(code, 0);
    assert.match(out, /\(worker_lost: worker worker-doomed sent no heartbeat after /);
    await stays.end();
    await lost.end().catch(() => undefined);
  });

  it("a worker started again under the same id ends its previous run's sessions at once", async () => {
    // Heartbeats a minute apart: silence alone would take three minutes to tell.
    const first = await startProxy("worker-fixed", 60_000);
    const client = await clientOf(first);
    await eventually("the session is in the read model", async () => {
      await service.projector.catchUp();
      return (await sessionsOf("worker-fixed")).length === 1;
    });
    await kill(first);
    await startProxy("worker-fixed", 60_000);
    await eventually(
      "the previous run's session is ended",
      async () => (await sessionsOf("worker-fixed"))[0]?.end_reason === "worker_lost",
      30_000,
    );
    const [row] = await sessionsOf("worker-fixed");
    assert.match(row!.end_detail, /^worker worker-fixed started again at .* with the session open$/);
    await client.end().catch(() => undefined);
  });

  it("judges silence only over a time it saw the bus working, and not while events wait on the bus", async () => {
    // Heartbeats a minute apart, so the service's own sweeper (real time) stays out of it; this one is given times.
    const slow = await startProxy("worker-slow", 60_000);
    const client = await clientOf(slow);
    await eventually("the session and the worker are in the read model", async () => {
      await service.projector.catchUp();
      const workers = await readDb.query("SELECT 1 FROM agentgate_read.workers WHERE worker_id = 'worker-slow'");
      return (await sessionsOf("worker-slow")).length === 1 && workers.rowCount === 1;
    });
    await kill(slow);
    const { rows } = await readDb.query<{ last_heartbeat: Date }>(
      "SELECT last_heartbeat FROM agentgate_read.workers WHERE worker_id = 'worker-slow'",
    );
    const last = rows[0]!.last_heartbeat.getTime();
    const bus: { state: "down" | "backlog" | "ok" } = { state: "down" };
    const sweeper = createLivenessSweeper({
      connectionString: database.db.url,
      eventStore: service.store,
      projector: service.projector,
      backlog: async () => {
        if (bus.state === "down") throw new Error("the bus is down");
        return bus.state === "backlog" ? 5 : 0;
      },
    });
    // Silence alone: healthy from before the last heartbeat, nothing until three intervals (180 s) have passed.
    const watcher = createLivenessSweeper({
      connectionString: database.db.url,
      eventStore: service.store,
      projector: service.projector,
      backlog: async () => 0,
    });
    try {
      assert.equal(await watcher.sweep(new Date(last - 1000)), 0);
      assert.equal(await watcher.sweep(new Date(last + 179_999)), 0, "silent for less than three intervals");
    } finally {
      await watcher.stop();
    }
    try {
      const t1 = last + 200_000; // long silent, as every worker is after a bus outage
      await assert.rejects(sweeper.sweep(new Date(t1)), /the bus is down/);
      bus.state = "ok";
      assert.equal(await sweeper.sweep(new Date(t1)), 0, "the bus was only just seen working");
      assert.equal(await sweeper.sweep(new Date(t1 + 179_000)), 0, "seen working for less than three intervals");
      bus.state = "backlog";
      assert.equal(await sweeper.sweep(new Date(t1 + 180_000)), 0, "events still wait on the bus");
      bus.state = "ok";
      assert.equal(await sweeper.sweep(new Date(t1 + 180_000)), 1);
      assert.equal((await sessionsOf("worker-slow"))[0]?.end_reason, "worker_lost");
      assert.equal(await sweeper.sweep(new Date(t1 + 190_000)), 0, "recorded once");
    } finally {
      await sweeper.stop();
      await client.end().catch(() => undefined);
    }
  });
});
