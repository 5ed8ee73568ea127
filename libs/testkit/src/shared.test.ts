import { strict as assert } from "node:assert";
import { connect } from "node:net";
import { describe, it } from "node:test";
import { Client } from "pg";
import { freshDatabase, sharedNats, sharedPostgres } from "./shared.ts";

describe("shared servers", () => {
  it("hands every caller the same PostgreSQL, which callers cannot stop", async () => {
    const [first, second] = await Promise.all([sharedPostgres(), sharedPostgres()]);
    assert.equal(first, second);
    await first.stop();
    assert.deepEqual(await first.query("SELECT 1 AS one"), [{ one: 1 }]);
    await assert.rejects(first.restart(), { code: "unsupported" });
  });

  it("gives each freshDatabase its own database, reachable by url, until dropped", async () => {
    const db = await freshDatabase();
    const other = await freshDatabase();
    assert.notEqual(db.name, other.name);
    const client = new Client({ connectionString: db.url });
    await client.connect();
    const { rows } = await client.query<{ db: string }>("SELECT current_database() AS db");
    await client.end();
    assert.deepEqual(rows, [{ db: db.name }]);

    await Promise.all([db.drop(), other.drop()]);
    const pg = await sharedPostgres();
    const left = await pg.query("SELECT 1 FROM pg_database WHERE datname = ANY($1)", [[db.name, other.name]]);
    assert.equal(left.length, 0);
  });

  it("hands out a nats-server that accepts connections", async () => {
    const nats = await sharedNats();
    assert.equal(nats, await sharedNats());
    const greeting = await new Promise<string>((resolve, reject) => {
      const socket = connect({ port: nats.port, host: "127.0.0.1" });
      socket.setEncoding("utf8");
      socket.once("data", (data: string) => {
        socket.destroy();
        resolve(data);
      });
      socket.once("error", reject);
    });
    assert.match(greeting, /^INFO /);
  });
});
