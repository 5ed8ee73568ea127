import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import { selfSignedCert } from "@agentgate/testkit";
import pg from "pg";
import { serialize } from "pg-protocol";
import { rawConnect, startTestGateway, type TestGateway } from "./testing.ts";

// A hung test fails instead of holding up the run.
const timeout = 30_000;

let gw: TestGateway;

before(async () => {
  gw = await startTestGateway();
  const direct = new pg.Client({ connectionString: gw.directUrl });
  await direct.connect();
  await direct.query("CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(8,2), tags text[], data bytea)");
  await direct.query(
    "INSERT INTO items SELECT i, 'item ' || i, i * 1.5, ARRAY['a', 'b'], '\\xdeadbeef' FROM generate_series(1, 100) i",
  );
  await direct.end();
});

after(async () => {
  await gw.close();
});

async function client(config: pg.ClientConfig = {}): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: gw.url(), ...config });
  await c.connect();
  return c;
}

async function sqlstate(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code;
  }
}

describe("node-postgres through the gateway", { timeout }, () => {
  it("runs simple-protocol queries, including several statements in one string", async () => {
    const c = await client();
    const result = (await c.query(
      "SELECT count(*)::int AS n FROM items; SELECT 'two' AS second",
    )) as unknown as pg.QueryResult[];
    assert.equal(result[0]!.rows[0].n, 100);
    assert.equal(result[1]!.rows[0].second, "two");
    await c.end();
  });

  it("runs extended-protocol queries with parameters and named prepared statements", async () => {
    const c = await client();
    const r = await c.query("SELECT name, price FROM items WHERE id = $1", [7]);
    assert.deepEqual(r.rows, [{ name: "item 7", price: "10.50" }]);
    for (const id of [1, 2, 3]) {
      const p = await c.query({ name: "by-id", text: "SELECT name FROM items WHERE id = $1", values: [id] });
      assert.equal(p.rows[0].name, `item ${id}`);
    }
    await c.end();
  });

  it("returns binary-format results exactly as the server sends them", async () => {
    const query = "SELECT id, name, price, tags, data, now() - now() AS zero FROM items WHERE id = $1";
    const viaGateway = await client({ binary: true } as pg.ClientConfig);
    const direct = new pg.Client({ connectionString: gw.directUrl, binary: true } as pg.ClientConfig);
    await direct.connect();
    const a = await viaGateway.query(query, [5]);
    const b = await direct.query(query, [5]);
    assert.equal(a.rows[0].id, 5, "int4 decoded from binary");
    assert.deepEqual(a.rows, b.rows);
    assert.deepEqual(
      a.fields.map((f) => f.format),
      b.fields.map((f) => f.format),
    );
    assert.ok(a.fields.every((f) => f.format === "binary"));
    await viaGateway.end();
    await direct.end();
  });

  it("keeps a failed transaction failed until ROLLBACK, like the server", async () => {
    const c = await client();
    await c.query("BEGIN");
    assert.equal(await sqlstate(c.query("SELECT 1/0")), "22012");
    assert.equal(await sqlstate(c.query("SELECT 1")), "25P02");
    await c.query("ROLLBACK");
    assert.equal((await c.query("SELECT 1 AS one")).rows[0].one, 1);
    await c.end();
  });

  it("delivers LISTEN/NOTIFY between two sessions", async () => {
    const listener = await client();
    const notifier = await client();
    await listener.query("LISTEN news");
    const received = new Promise<pg.Notification>((resolve) => listener.once("notification", resolve));
    await notifier.query("NOTIFY news, 'héllo'");
    const n = await received;
    assert.equal(n.channel, "news");
    assert.equal(n.payload, "héllo");
    await listener.end();
    await notifier.end();
  });

  it("hands the client the gateway's cancel key and cancels the upstream query with it", async () => {
    const c = await client();
    const upstreamPid = (await c.query("SELECT pg_backend_pid() AS pid")).rows[0].pid as number;
    const key = c as unknown as { processID: number; secretKey: number };
    assert.notEqual(key.processID, upstreamPid, "the client must not learn the upstream backend's pid");
    const sleeping = c.query("SELECT pg_sleep(30)");
    await new Promise((r) => setTimeout(r, 200));
    const started = Date.now();
    await sendCancel(gw.port, key.processID, key.secretKey);
    assert.equal(await sqlstate(sleeping), "57014");
    assert.ok(Date.now() - started < 5000);
    await c.end();
  });

  it("ignores a cancel request with a wrong key", async () => {
    const c = await client();
    const key = c as unknown as { processID: number; secretKey: number };
    const sleeping = c.query("SELECT pg_sleep(0.5) AS slept");
    await sendCancel(gw.port, key.processID, key.secretKey + 1);
    assert.equal((await sleeping).rowCount, 1);
    await c.end();
  });
});

describe("the startup handshake", { timeout }, () => {
  it("pipelines extended-protocol messages sent in one write", async () => {
    const raw = await startup();
    const batch: Buffer[] = [];
    for (const id of [1, 2, 3]) {
      batch.push(serialize.parse({ text: "SELECT name FROM items WHERE id = $1" }));
      batch.push(serialize.bind({ values: [String(id)] }));
      batch.push(serialize.execute());
    }
    batch.push(serialize.sync());
    raw.send(Buffer.concat(batch));
    const messages = await raw.until("Z");
    const rows = messages.filter((m) => m.type === "D").map((m) => m.bytes.toString("utf8", 11));
    assert.deepEqual(rows, ["item 1", "item 2", "item 3"]);
    raw.close();
  });

  it("declines SSL cleanly when no certificate is configured, then accepts a plain startup", async () => {
    const raw = await rawConnect(gw.port);
    raw.send(serialize.requestSsl());
    assert.equal(await raw.readByte(), "N");
    raw.send(serialize.startup({ user: "agent", database: "app" }));
    const messages = await raw.until("Z");
    assert.equal(messages[0]!.type, "R");
    raw.close();
  });

  it("declines GSS encryption", async () => {
    const raw = await rawConnect(gw.port);
    const gss = Buffer.alloc(8);
    gss.writeInt32BE(8, 0);
    gss.writeInt32BE(80877104, 4);
    raw.send(gss);
    assert.equal(await raw.readByte(), "N");
    raw.send(serialize.startup({ user: "agent", database: "app" }));
    await raw.until("Z");
    raw.close();
  });

  it("answers a protocol 3.2 request with NegotiateProtocolVersion and carries on with 3.0", async () => {
    const raw = await rawConnect(gw.port);
    const body = Buffer.from("user\0agent\0database\0app\0_pq_.future\0x\0\0");
    const head = Buffer.alloc(8);
    head.writeInt32BE(8 + body.length, 0);
    head.writeInt32BE((3 << 16) | 2, 4);
    raw.send(Buffer.concat([head, body]));
    const messages = await raw.until("Z");
    const negotiate = messages[0]!;
    assert.equal(negotiate.type, "v");
    assert.equal(negotiate.bytes.readInt32BE(5), 3 << 16);
    assert.equal(negotiate.bytes.readInt32BE(9), 1);
    assert.equal(negotiate.bytes.toString("utf8", 13, negotiate.bytes.length - 1), "_pq_.future");
    raw.close();
  });

  it("refuses an unknown target with 3D000", async () => {
    const c = new pg.Client({ connectionString: gw.url().replace(/\/app$/, "/nope") });
    await assert.rejects(c.connect(), (e: { code?: string; message: string }) => {
      assert.equal(e.code, "3D000");
      assert.match(e.message, /target "nope" does not exist/);
      return true;
    });
  });

  it("refuses replication connections with 0A000", async () => {
    const raw = await rawConnect(gw.port);
    raw.send(serialize.startup({ user: "agent", database: "app", replication: "database" }));
    const error = await raw.next();
    assert.equal(error?.fields?.C, "0A000");
    await raw.ended;
  });

  it("passes the upstream's startup parameters through, and the client's application_name upstream", async () => {
    const raw = await rawConnect(gw.port);
    raw.send(serialize.startup({ user: "agent", database: "app", application_name: "agent-test" }));
    const messages = await raw.until("Z");
    const params = new Map(
      messages
        .filter((m) => m.type === "S")
        .map((m) => m.bytes.toString("utf8", 5, m.bytes.length - 1).split("\0") as [string, string]),
    );
    assert.match(params.get("server_version") ?? "", /^\d+/);
    assert.equal(params.get("application_name"), "agent-test");
    assert.equal(messages.filter((m) => m.type === "K").length, 1);
    raw.close();
  });
});

describe("TLS termination", { timeout }, () => {
  it("terminates TLS with the configured certificate", async () => {
    const cert = await selfSignedCert({ commonName: "localhost" });
    const tlsGw = await startTestGateway({ proxy: { tls: { cert: cert.certPath, key: cert.keyPath } } });
    try {
      const c = new pg.Client({ connectionString: tlsGw.url(), ssl: { ca: cert.cert, servername: "localhost" } });
      await c.connect();
      assert.equal((await c.query("SELECT 'secure' AS s")).rows[0].s, "secure");
      await c.end();
      const untrusted = new pg.Client({ connectionString: tlsGw.url(), ssl: { rejectUnauthorized: true } });
      await assert.rejects(untrusted.connect(), /self[- ]signed|unable to verify/i);
    } finally {
      await tlsGw.close();
      cert.cleanup();
    }
  });
});

describe("protocol violations and timeouts", { timeout }, () => {
  it("closes a session that sends an unknown message type with 08P01, and no other", async () => {
    const bystander = await client();
    const raw = await startup();
    raw.send(Buffer.from([0x01, 0, 0, 0, 4]));
    const error = await raw.next();
    assert.equal(error?.type, "E");
    assert.equal(error?.fields?.C, "08P01");
    assert.match(error?.fields?.M ?? "", /invalid frontend message type 0x01/);
    await raw.ended;
    assert.equal((await bystander.query("SELECT 1 AS ok")).rows[0].ok, 1);
    await bystander.end();
  });

  it("closes a client that never finishes its startup", async () => {
    const quick = await startTestGateway({ proxy: { startupTimeoutMs: 300 } });
    try {
      const raw = await rawConnect(quick.port);
      raw.send(Buffer.from([0, 0, 0])); // a startup packet that never completes
      const error = await raw.next(3000);
      assert.equal(error?.fields?.C, "08006");
      assert.match(error?.fields?.M ?? "", /startup did not complete within 300 ms/);
      await raw.ended;
    } finally {
      await quick.close();
    }
  });

  it("ends sessions idle longer than idleSessionTimeoutMs with 57P05", async () => {
    const idle = await startTestGateway({ proxy: { idleSessionTimeoutMs: 300 } });
    try {
      const c = new pg.Client({ connectionString: idle.url() });
      await c.connect();
      const failure = firstError(c);
      assert.equal((await c.query("SELECT pg_sleep(0.5), 1 AS busy")).rows[0].busy, 1, "a running query is not idle");
      assert.equal((await failure).code, "57P05");
    } finally {
      await idle.close();
    }
  });
});

describe("graceful shutdown", { timeout }, () => {
  it("lets a transaction finish, then ends the session; idle sessions end at once; new clients are refused", async () => {
    const draining = await startTestGateway();
    const idleClient = new pg.Client({ connectionString: draining.url() });
    const busy = new pg.Client({ connectionString: draining.url() });
    await idleClient.connect();
    await busy.connect();
    const idleEnded = firstError(idleClient);
    const busyEnded = firstError(busy);
    await busy.query("BEGIN");
    await busy.query("CREATE TABLE drained (id int)");
    const closing = draining.proxy.close({ drainTimeoutMs: 10_000 });
    assert.equal((await idleEnded).code, "57P01");
    await assert.rejects(new pg.Client({ connectionString: draining.url() }).connect());
    await busy.query("INSERT INTO drained VALUES (1)");
    await busy.query("COMMIT");
    assert.equal((await busyEnded).code, "57P01");
    await closing;
    const direct = new pg.Client({ connectionString: draining.directUrl });
    await direct.connect();
    assert.equal((await direct.query("SELECT count(*)::int AS n FROM drained")).rows[0].n, 1);
    await direct.end();
    await draining.close();
  });
});

async function startup() {
  const raw = await rawConnect(gw.port);
  raw.send(serialize.startup({ user: "agent", database: "app" }));
  await raw.until("Z");
  return raw;
}

function sendCancel(port: number, processId: number, secretKey: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port }, () => socket.end(serialize.cancel(processId, secretKey)));
    socket.on("error", reject);
    socket.on("close", () => resolve());
    socket.resume();
  });
}

/** The first error a client reports; node-postgres follows a FATAL with "Connection terminated", which we ignore. */
function firstError(c: pg.Client): Promise<Error & { code?: string }> {
  return new Promise((resolve) => c.on("error", resolve));
}
