import { strict as assert } from "node:assert";
import { after, before, describe, it } from "node:test";
import { Client } from "pg";
import { testEvent } from "../testing/contract.ts";
import { createPostgresEventStore, type PostgresEventStore } from "./event-store.ts";
import { migrate } from "./migrate.ts";
import { type StoreDatabase, storeDatabase } from "./testing.ts";

async function connect(url: string): Promise<Client> {
  const client = new Client({ connectionString: url });
  client.on("error", () => {});
  await client.connect();
  return client;
}

describe("the PostgreSQL schema enforces append-only", () => {
  let database: StoreDatabase;
  let store: PostgresEventStore;
  let owner: Client;
  let writer: Client;
  let events: string;
  before(async () => {
    database = await storeDatabase();
    store = await database.openStore();
    events = `${store.schema}.events`;
    await store.append("session-1", [testEvent(0), testEvent(1), testEvent(2)]);
    [owner, writer] = await Promise.all([connect(database.db.url), connect(database.writerUrl)]);
  });
  after(async () => {
    await Promise.all([store.close(), owner.end(), writer.end()]);
    await database.drop();
  });

  const statements = () => ({
    UPDATE: `UPDATE ${events} SET data = '\\x00' WHERE position = 2`,
    DELETE: `DELETE FROM ${events} WHERE position = 2`,
    TRUNCATE: `TRUNCATE ${events}`,
  });

  it("stops even the owner with a clear error from the trigger", async () => {
    for (const [operation, sql] of Object.entries(statements())) {
      await assert.rejects(owner.query(sql), (error: Error) => {
        assert.match(
          error.message,
          new RegExp(`${operation} on ${store.schema}\\.events refused: events are append-only`),
        );
        return true;
      });
    }
    const { rows } = await owner.query(`SELECT count(*)::int AS n FROM ${events}`);
    assert.deepEqual(rows, [{ n: 3 }]);
  });

  it("denies the writer UPDATE, DELETE and TRUNCATE by privilege, with the trigger disabled", async () => {
    await owner.query(`ALTER TABLE ${events} DISABLE TRIGGER events_append_only`);
    try {
      for (const sql of Object.values(statements())) {
        await assert.rejects(writer.query(sql), { code: "42501", message: /permission denied/ });
      }
    } finally {
      await owner.query(`ALTER TABLE ${events} ENABLE TRIGGER events_append_only`);
    }
    const { rows } = await owner.query(`SELECT count(*)::int AS n FROM ${events}`);
    assert.deepEqual(rows, [{ n: 3 }]);
  });

  it("denies the writer changes to the schema and its triggers", async () => {
    await assert.rejects(writer.query(`ALTER TABLE ${events} DISABLE TRIGGER events_append_only`), { code: "42501" });
    await assert.rejects(writer.query(`DROP TRIGGER events_append_only ON ${events}`), { code: "42501" });
    await assert.rejects(writer.query(`CREATE TABLE ${store.schema}.scratch (x int)`), { code: "42501" });
    const { rows } = await writer.query<{ privilege_type: string }>(
      `SELECT privilege_type FROM information_schema.role_table_grants
        WHERE grantee = $1 AND table_schema = $2 ORDER BY privilege_type`,
      [database.writerRole, store.schema],
    );
    assert.deepEqual(
      rows.map((row) => row.privilege_type),
      ["INSERT", "SELECT"],
    );
  });

  it("refuses inserted rows that do not extend the chain, even from a writer that skips the append lock", async () => {
    const { rows } = await writer.query<{ position: string; hash: string }>(
      `SELECT position, hash FROM ${events} ORDER BY position DESC LIMIT 1`,
    );
    const head = rows[0]!;
    const insert = (position: bigint, prevHash: string) =>
      writer.query(
        `INSERT INTO ${events} (position, stream, revision, event_id, type, data, occurred_at, recorded_at, prev_hash, hash)
         VALUES ($1, 'rogue', 0, gen_random_uuid(), 't', '\\x00', now(), now(), $2, $3)`,
        [position.toString(), prevHash, "f".repeat(64)],
      );
    await assert.rejects(insert(BigInt(head.position) + 2n, head.hash), {
      code: "23000",
      message: /position 4 is missing/,
    });
    await assert.rejects(insert(BigInt(head.position) + 1n, "e".repeat(64)), {
      code: "23000",
      message: /does not link/,
    });
    // Overwriting the head's position: refused (by the link check or the primary key, whichever runs first).
    await assert.rejects(insert(BigInt(head.position), head.hash), { code: /^23/ });
  });

  it("migrates again without change, and refuses a superuser or owner as the writer", async () => {
    await migrate(database.db.url, { schema: store.schema, writerRole: database.writerRole });
    assert.equal((await store.append("session-1", [testEvent(3)])).position, 4n);
    await assert.rejects(migrate(database.db.url, { schema: "other", writerRole: "postgres" }), {
      code: "invalid_argument",
    });
    await assert.rejects(migrate(database.db.url, { schema: "Bad-Name", writerRole: database.writerRole }), {
      code: "invalid_argument",
    });
  });

  it("tells a store on an unmigrated schema to run migrate()", async () => {
    const unmigrated = createPostgresEventStore({ connectionString: database.writerUrl, schema: "nowhere" });
    try {
      await assert.rejects(unmigrated.append("session-1", [testEvent(0)]), {
        code: "storage",
        message: /SQLSTATE 42P01.*migrate\(\)/,
      });
    } finally {
      await unmigrated.close();
    }
  });
});
