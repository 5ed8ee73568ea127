import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  type PostgresAuth,
  type PostgresInstance,
  type SelfSignedCert,
  selfSignedCert,
  startPostgres,
} from "@agentgate/testkit";
import pg from "pg";
import { serialize } from "pg-protocol";
import { rawConnect, startTestGateway } from "./testing.ts";

const SERVICE_PASSWORD = "svc-Pa55-never-shown";

/** A target server with a non-superuser service role, as a gateway would be given. */
async function serviceRole(server: PostgresInstance, password = SERVICE_PASSWORD): Promise<string> {
  const database = await server.createDatabase();
  await server.query(`CREATE ROLE svc_app LOGIN PASSWORD '${password}'`);
  await server.query(`GRANT ALL ON DATABASE ${database} TO svc_app`);
  return database;
}

async function queryThrough(url: string, sql: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

describe("the gateway signs in to the target with the credential it holds", { timeout: 120_000 }, () => {
  for (const auth of ["scram-sha-256", "md5", "password", "trust"] satisfies PostgresAuth[]) {
    it(`with ${auth} authentication`, async () => {
      const server = await startPostgres({ auth });
      try {
        const database = await serviceRole(server);
        const url = `postgres://svc_app:${SERVICE_PASSWORD}@127.0.0.1:${server.port}/${database}`;
        const gw = await startTestGateway({ target: { url } });
        try {
          const r = await queryThrough(gw.url("agent"), "SELECT current_user AS u");
          assert.equal(r.rows[0].u, "svc_app");
        } finally {
          await gw.close();
        }
      } finally {
        await server.stop();
      }
    });
  }

  it("reports the client's own user name as session_authorization, never the upstream role", async () => {
    const server = await startPostgres({ auth: "scram-sha-256" });
    try {
      const database = await serviceRole(server);
      const url = `postgres://svc_app:${SERVICE_PASSWORD}@127.0.0.1:${server.port}/${database}`;
      const gw = await startTestGateway({ target: { url } });
      try {
        const raw = await rawConnect(gw.port);
        raw.send(serialize.startup({ user: "agent-7", database: "app" }));
        const messages = await raw.until("Z");
        const text = messages.map((m) => m.bytes.toString("latin1")).join("");
        assert.match(text, /session_authorization\0agent-7\0/);
        assert.doesNotMatch(text, /svc_app/);
        raw.close();
      } finally {
        await gw.close();
      }
    } finally {
      await server.stop();
    }
  });

  it("refuses clients with 08001 when the target rejects the credential, naming neither user nor password", async () => {
    const server = await startPostgres({ auth: "scram-sha-256" });
    try {
      const database = await serviceRole(server);
      const url = `postgres://svc_app:wrong-${SERVICE_PASSWORD}@127.0.0.1:${server.port}/${database}`;
      const gw = await startTestGateway({ target: { url } });
      try {
        await assert.rejects(queryThrough(gw.url("agent"), "SELECT 1"), (e: Error & { code?: string }) => {
          assert.equal(e.code, "08001");
          assert.match(e.message, /target "app" rejected the gateway's credential/);
          assert.doesNotMatch(e.message, /svc_app|Pa55/);
          return true;
        });
      } finally {
        await gw.close();
      }
    } finally {
      await server.stop();
    }
  });
});

describe("TLS from the gateway to the target", { timeout: 120_000 }, () => {
  let cert: SelfSignedCert;
  let otherCa: SelfSignedCert;
  let server: PostgresInstance;
  let url: string;

  before(async () => {
    cert = await selfSignedCert({ commonName: "localhost" });
    otherCa = await selfSignedCert({ commonName: "someone-else" });
    server = await startPostgres({ settings: { ssl: "on", ssl_cert_file: cert.certPath, ssl_key_file: cert.keyPath } });
    url = `postgres://svc_app:${SERVICE_PASSWORD}@127.0.0.1:${server.port}/${await serviceRole(server)}`;
  });

  after(async () => {
    await server.stop();
    await cert.cleanup();
    await otherCa.cleanup();
  });

  const sslInUse = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

  it("verify-full with the target's CA: the upstream session is encrypted", async () => {
    const gw = await startTestGateway({ target: { url, tls: { mode: "verify-full", ca: cert.caPath } } });
    try {
      assert.equal((await queryThrough(gw.url(), sslInUse)).rows[0].ssl, true);
    } finally {
      await gw.close();
    }
  });

  it("verify-full with the wrong CA refuses the connection", async () => {
    const gw = await startTestGateway({ target: { url, tls: { mode: "verify-full", ca: otherCa.caPath } } });
    try {
      await assert.rejects(queryThrough(gw.url(), "SELECT 1"), (e: Error & { code?: string }) => {
        assert.equal(e.code, "08001");
        assert.match(e.message, /TLS to target "app" failed/);
        return true;
      });
    } finally {
      await gw.close();
    }
  });

  it("require encrypts without checking the certificate; disable stays plain", async () => {
    const required = await startTestGateway({ target: { url, tls: { mode: "require" } } });
    const plain = await startTestGateway({ target: { url, tls: { mode: "disable" } } });
    try {
      assert.equal((await queryThrough(required.url(), sslInUse)).rows[0].ssl, true);
      assert.equal((await queryThrough(plain.url(), sslInUse)).rows[0].ssl, false);
    } finally {
      await required.close();
      await plain.close();
    }
  });
});
