import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  freePort,
  freshDatabase,
  type OidcProviderInstance,
  type SelfSignedCert,
  selfSignedCert,
  startOidcProvider,
} from "@agentgate/testkit";
import { SignJWT } from "jose";
import pg from "pg";
import { serialize } from "pg-protocol";
import { startTestGateway, type TestGateway } from "./testing.ts";

const AUDIENCE = "agentgate";
let idp: OidcProviderInstance;
let cert: SelfSignedCert;
let gw: TestGateway;

before(async () => {
  idp = await startOidcProvider({
    audience: AUDIENCE,
    clients: [
      { clientId: "agent-a", clientSecret: "agent-a-secret", groups: ["analysts", "readers"] },
      { clientId: "agent-b", clientSecret: "agent-b-secret", groups: ["writers"] },
    ],
  });
  cert = await selfSignedCert({ commonName: "localhost" });
  gw = await startTestGateway({
    proxy: { tls: { cert: cert.certPath, key: cert.keyPath } },
    identity: { issuer: idp.issuer, audience: AUDIENCE },
  });
});

after(async () => {
  await gw.close();
  await idp.stop();
  await cert.cleanup();
});

function tlsClient(password: string, database = "app"): pg.Client {
  return new pg.Client({
    host: "127.0.0.1",
    port: gw.port,
    user: "agent",
    database,
    password,
    ssl: { ca: cert.cert, servername: "localhost" },
  });
}

/** Connects with `password` and returns the refusal: SQLSTATE and message. */
async function refusal(password: string, options: { ssl?: boolean; database?: string } = {}) {
  const client =
    options.ssl === false
      ? new pg.Client({ host: "127.0.0.1", port: gw.port, user: "agent", database: "app", password })
      : tlsClient(password, options.database);
  try {
    await client.connect();
  } catch (error) {
    const e = error as Error & { code?: string };
    return { code: e.code, message: e.message };
  }
  await client.end();
  assert.fail("the gateway admitted a client it should have refused");
}

const now = () => Math.floor(Date.now() / 1000);

function psql(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      "psql",
      ["-X", "-A", "-t", ...args],
      { env: { PATH: process.env.PATH, ...env }, timeout: 30_000 },
      (e, stdout, stderr) => resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

describe("agents sign in with an OIDC access token", { timeout: 60_000 }, () => {
  it("admits node-postgres over TLS with a valid token, and the session knows the principal", async () => {
    const client = tlsClient(await idp.token("agent-a"));
    await client.connect();
    try {
      assert.equal((await client.query("SELECT 40 + 2 AS answer")).rows[0].answer, 42);
      const mine = gw.proxy.sessions().find((s) => s.phase === "relay" && s.principal?.clientId === "agent-a");
      assert.ok(mine, "the session is listed with its principal");
      assert.equal(mine.tls, true);
      assert.equal(mine.principal!.issuer, idp.issuer);
      assert.ok(mine.principal!.subject.length > 0);
      assert.deepEqual([...mine.principal!.groups].sort(), ["analysts", "readers"]);
    } finally {
      await client.end();
    }
  });

  it("admits psql with the token as PGPASSWORD and sslmode=require", async () => {
    const r = await psql([`postgresql://agent@127.0.0.1:${gw.port}/app?sslmode=require`, "-c", "SELECT 'hello'"], {
      PGPASSWORD: await idp.token("agent-b"),
    });
    assert.equal(r.stderr, "");
    assert.equal(r.stdout.trim(), "hello");
  });
});

describe("refused sign-ins say why, with 28000/28P01", { timeout: 60_000 }, () => {
  it("expired token", async () => {
    const token = await idp.sign({ sub: "agent-x", aud: AUDIENCE, iat: now() - 600, exp: now() - 300 });
    const r = await refusal(token);
    assert.equal(r.code, "28P01");
    assert.match(r.message, /sign-in refused: .*expired/i);
  });

  it("token not yet valid", async () => {
    const token = await idp.sign({ sub: "agent-x", aud: AUDIENCE, nbf: now() + 600, exp: now() + 900 });
    const r = await refusal(token);
    assert.equal(r.code, "28P01");
    assert.match(r.message, /not yet valid/i);
  });

  it("wrong audience", async () => {
    const token = await idp.sign({ sub: "agent-x", aud: "someone-else", exp: now() + 300 });
    const r = await refusal(token);
    assert.equal(r.code, "28P01");
    assert.match(r.message, /audience/i);
  });

  it("wrong issuer", async () => {
    const token = await idp.sign({ sub: "agent-x", aud: AUDIENCE, iss: "https://evil.example.com", exp: now() + 300 });
    const r = await refusal(token);
    assert.equal(r.code, "28P01");
    assert.match(r.message, /issuer/i);
  });

  it("tampered signature", async () => {
    const [head, body, signature] = (await idp.token("agent-a")).split(".");
    const claims = JSON.parse(Buffer.from(body!, "base64url").toString());
    claims.groups = ["admins"];
    const forged = `${head}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${signature}`;
    const r = await refusal(forged);
    assert.equal(r.code, "28P01");
    assert.match(r.message, /signature/i);
  });

  it("alg: none", async () => {
    const header = Buffer.from(JSON.stringify({ alg: "none", typ: "JWT" })).toString("base64url");
    const body = Buffer.from(
      JSON.stringify({ sub: "agent-x", aud: AUDIENCE, iss: idp.issuer, exp: now() + 300 }),
    ).toString("base64url");
    const r = await refusal(`${header}.${body}.`);
    assert.equal(r.code, "28P01");
    assert.match(r.message, /algorithm|not allowed|none/i);
  });

  it("HS256 signed with the provider's public key", async () => {
    const jwk = (await idp.publicJwks()).keys[0]!;
    const secret = new TextEncoder().encode(JSON.stringify(jwk));
    const token = await new SignJWT({ sub: "agent-x", aud: AUDIENCE })
      .setProtectedHeader({ alg: "HS256", kid: jwk.kid as string })
      .setIssuer(idp.issuer)
      .setExpirationTime("5m")
      .sign(secret);
    const r = await refusal(token);
    assert.equal(r.code, "28P01");
    assert.match(r.message, /algorithm|HS256/i);
  });

  it("a token signed by a key the provider does not have", async () => {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const token = await new SignJWT({ sub: "agent-x", aud: AUDIENCE })
      .setProtectedHeader({ alg: "ES256", kid: "not-a-provider-key" })
      .setIssuer(idp.issuer)
      .setExpirationTime("5m")
      .sign(privateKey);
    const r = await refusal(token);
    assert.equal(r.code, "28P01");
    assert.match(r.message, /signature|key/i);
  });

  it("a password that is not a token", async () => {
    const r = await refusal("hunter2");
    assert.equal(r.code, "28P01");
    assert.match(r.message, /not a token|malformed/i);
  });

  it("no TLS: the token is never asked for in clear", async () => {
    const r = await refusal(await idp.token("agent-a"), { ssl: false });
    assert.equal(r.code, "28000");
    assert.match(r.message, /TLS is required/);
  });

  it("an unknown target, after sign-in", async () => {
    const r = await refusal(await idp.token("agent-a"), { database: "nope" });
    assert.equal(r.code, "3D000");
    assert.match(r.message, /target "nope" does not exist/);
  });

  it("counts refusals by reason", () => {
    const counts = gw.proxy.stats().signInRefusals;
    for (const reason of ["expired", "not_yet_valid", "wrong_audience", "wrong_issuer", "bad_signature", "no_tls"]) {
      assert.ok((counts[reason] ?? 0) >= 1, `${reason} counted: ${JSON.stringify(counts)}`);
    }
  });
});

describe("tokens and sessions over time", { timeout: 60_000 }, () => {
  it("accepts tokens signed with a rotated key without a restart", async () => {
    const kidOf = (token: string) => JSON.parse(Buffer.from(token.split(".")[0]!, "base64url").toString()).kid;
    const old = await idp.token("agent-a");
    const before = tlsClient(old);
    await before.connect();
    await before.end();
    await idp.rotateKeys({ dropOld: true });
    const fresh = await idp.token("agent-a");
    assert.notEqual(kidOf(fresh), kidOf(old), "the new token is signed with the new key");
    const after = tlsClient(fresh);
    await after.connect();
    assert.equal((await after.query("SELECT 1 AS one")).rows[0].one, 1);
    await after.end();
  });

  it("ends a session when its token expires, cancelling what runs; a fresh token works again", async () => {
    const token = await idp.sign({ sub: "short-lived", aud: AUDIENCE, exp: now() + 3 });
    const client = tlsClient(token);
    await client.connect();
    client.on("error", () => undefined); // node-postgres follows the FATAL with "Connection terminated"
    const started = Date.now();
    // node-postgres hands the FATAL to the query that was running when it came.
    const outcome = (await client.query("SELECT pg_sleep(30)").catch((e: unknown) => e)) as Error & { code?: string };
    assert.ok(outcome instanceof Error, "the running query did not complete");
    assert.equal(outcome.code, "28000");
    assert.match(outcome.message, /access token expired/);
    assert.ok(Date.now() - started < 15_000, "ended at expiry, not after the 30 s sleep");
    const direct = new pg.Client({ connectionString: gw.directUrl });
    await direct.connect();
    let lingering = 1;
    for (let i = 0; i < 50 && lingering > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const r = await direct.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(30)' AND state = 'active'",
      );
      lingering = r.rows[0].n;
    }
    await direct.end();
    assert.equal(lingering, 0, "the statement running at expiry was cancelled upstream");
    const again = tlsClient(await idp.token("agent-a"));
    await again.connect();
    assert.equal((await again.query("SELECT 1 AS one")).rows[0].one, 1);
    await again.end();
  });

  it("cancels a long pg_sleep through the gateway within a second (TLS session)", async () => {
    const client = tlsClient(await idp.token("agent-a"));
    await client.connect();
    const key = client as unknown as { processID: number; secretKey: number };
    const sleeping = client.query("SELECT pg_sleep(30)").catch((e: Error & { code?: string }) => e);
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    await new Promise<void>((resolve, reject) => {
      const s = connect({ host: "127.0.0.1", port: gw.port }, () =>
        s.end(serialize.cancel(key.processID, key.secretKey)),
      );
      s.on("error", reject);
      s.on("close", () => resolve());
      s.resume();
    });
    const outcome = (await sleeping) as Error & { code?: string };
    const took = Date.now() - started;
    assert.equal(outcome.code, "57014");
    assert.ok(took < 1000, `cancelled after ${took} ms`);
    await client.end();
  });
});

describe("the upstream credential never leaks", { timeout: 60_000 }, () => {
  it("is in no log line, client-visible error, or process title", async () => {
    // A gateway process of its own, so its logs and its command line can be read whole.
    const db = await freshDatabase();
    const password = new URL(db.url).password;
    const dir = mkdtempSync(join(tmpdir(), "agentgate-leak-"));
    const configPath = join(dir, "agentgate.yaml");
    const port = await freePort();
    writeFileSync(
      configPath,
      [
        "proxy:",
        `  listen: 127.0.0.1:${port}`,
        `  tls: { cert: ${cert.certPath}, key: ${cert.keyPath} }`,
        "identity:",
        `  issuer: ${idp.issuer}`,
        `  audience: ${AUDIENCE}`,
        "log: { level: debug }",
        "targets:",
        "  app:",
        `    url: ${db.url.replace(password, "${DB_PASSWORD}")}`,
        "",
      ].join("\n"),
    );
    const bin = new URL("../../cli/bin/agentgate.js", import.meta.url).pathname;
    const child = spawn(process.execPath, [bin, "proxy", "--config", configPath], {
      env: { PATH: process.env.PATH, DB_PASSWORD: password },
    });
    let logs = "";
    child.stdout.on("data", (d: Buffer) => {
      logs += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      logs += d.toString();
    });
    try {
      while (!logs.includes("proxy listening")) await new Promise((r) => setTimeout(r, 100));
      const client = (pw: string, database = "app") =>
        new pg.Client({
          host: "127.0.0.1",
          port,
          user: "agent",
          database,
          password: pw,
          ssl: { ca: cert.cert, servername: "localhost" },
        });
      const seen: string[] = [];
      const ok = client(await idp.token("agent-a"));
      await ok.connect();
      await ok.query("SELECT 1");
      await ok.query("SELECT nope").catch((e: Error) => seen.push(e.message));
      await ok.end();
      for (const [pw, database] of [
        ["garbage", "app"],
        [await idp.token("agent-a"), "nope"],
      ] as const) {
        await client(pw, database)
          .connect()
          .catch((e: Error) => seen.push(e.message));
      }
      const title = await new Promise<string>((resolve) =>
        execFile("ps", ["-o", "args=", "-p", String(child.pid)], (_e, out) => resolve(out)),
      );
      await new Promise((r) => setTimeout(r, 200));
      assert.ok(logs.includes("session started"), "the logs were captured");
      assert.equal(seen.length, 3);
      for (const [where, text] of [
        ["logs", logs],
        ["errors", seen.join("\n")],
        ["process title", title],
      ] as const) {
        assert.ok(!text.includes(password), `the upstream password appears in the ${where}`);
      }
    } finally {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
      rmSync(dir, { recursive: true, force: true });
      await db.drop();
    }
  });
});
