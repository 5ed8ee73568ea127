import { strict as assert } from "node:assert";
import { existsSync, statSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { Client } from "pg";
import { type PostgresAuth, type PostgresInstance, startPostgres } from "./postgres.ts";
import { serverUser } from "./unprivileged.ts";

async function connect(url: string): Promise<Client> {
  const client = new Client({ connectionString: url });
  await client.connect();
  return client;
}

async function currentUser(url: string): Promise<string> {
  const client = await connect(url);
  try {
    return (await client.query<{ current_user: string }>("SELECT current_user")).rows[0]!.current_user;
  } finally {
    await client.end();
  }
}

function withPassword(url: string, password: string): string {
  const parsed = new URL(url);
  parsed.password = password;
  return parsed.toString();
}

describe("startPostgres with the default scram-sha-256", () => {
  let pg: PostgresInstance;
  before(async () => {
    pg = await startPostgres();
  });
  after(() => pg.stop());

  it("lets the superuser in over TCP with the password it reports", async () => {
    assert.equal(await currentUser(pg.url()), "postgres");
    assert.match(pg.version, /^\d+(\.\d+)?/);
    const [rule] = await pg.query<{ auth_method: string }>(
      "SELECT auth_method FROM pg_hba_file_rules WHERE type = 'host' AND address = '127.0.0.1'",
    );
    assert.equal(rule?.auth_method, "scram-sha-256");
  });

  it("refuses a wrong password", async () => {
    await assert.rejects(currentUser(withPassword(pg.url(), "not-the-password")), { code: "28P01" });
  });

  it("gives every createDatabase call a database of its own", async () => {
    const first = await pg.createDatabase();
    const second = await pg.createDatabase();
    assert.notEqual(first, second);
    await pg.query("CREATE TABLE only_here (id int)", [], first);
    const found = (database: string) =>
      pg.query("SELECT 1 FROM information_schema.tables WHERE table_name = 'only_here'", [], database);
    assert.equal((await found(first)).length, 1);
    assert.equal((await found(second)).length, 0);
  });

  it("keeps its data and port across restart", async () => {
    const database = await pg.createDatabase();
    await pg.restart();
    const rows = await pg.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname = $1", [database]);
    assert.deepEqual(rows, [{ datname: database }]);
  });

  it("runs the server as the unprivileged user when we are root", { skip: serverUser() === undefined }, () => {
    assert.equal(statSync(pg.dataDir).uid, serverUser()?.uid);
  });
});

describe("startPostgres with other auth methods", { concurrency: true }, () => {
  for (const auth of ["md5", "password", "trust"] satisfies PostgresAuth[]) {
    it(`uses ${auth} for TCP connections`, async (t) => {
      const pg = await startPostgres({ auth });
      t.after(() => pg.stop());
      assert.equal(await currentUser(pg.url()), "postgres");
      const [rule] = await pg.query<{ auth_method: string }>(
        "SELECT auth_method FROM pg_hba_file_rules WHERE type = 'host' AND address = '127.0.0.1'",
      );
      assert.equal(rule?.auth_method, auth);
      if (auth === "md5") {
        const [role] = await pg.query<{ md5: boolean }>(
          "SELECT rolpassword LIKE 'md5%' AS md5 FROM pg_authid WHERE rolname = 'postgres'",
        );
        assert.equal(role?.md5, true, "md5 auth needs an md5 verifier, or the server silently uses SCRAM");
      }
      if (auth === "trust") {
        assert.equal(await currentUser(withPassword(pg.url(), "anything")), "postgres");
      } else {
        await assert.rejects(currentUser(withPassword(pg.url(), "wrong")), { code: "28P01" });
      }
    });
  }
});

describe("PostgresInstance.stop", () => {
  it("removes the data directory and can be called twice", async () => {
    const pg = await startPostgres({ settings: { max_connections: "20" } });
    const [setting] = await pg.query<{ max_connections: string }>("SHOW max_connections");
    assert.equal(setting?.max_connections, "20");
    assert.ok(existsSync(pg.dataDir));
    await pg.stop();
    await pg.stop();
    assert.equal(existsSync(pg.dataDir), false);
    assert.equal(existsSync(pg.socketDir), false);
    await assert.rejects(pg.restart(), { code: "stopped" });
  });
});
