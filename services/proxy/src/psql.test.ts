// psql through the gateway must be indistinguishable from psql against PostgreSQL: every story below runs the same
// psql twice, first straight to the server, then through the gateway, and compares what psql printed byte for byte.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import pg from "pg";
import { type PsqlResult, runPsql, spawnPsql, text } from "./psql-testing.ts";
import { startTestGateway, type TestGateway } from "./testing.ts";

type SideName = "direct" | "gateway";
interface Side {
  name: SideName;
  url: string;
}

let gw: TestGateway;
let admin: pg.Client;
let work: string;

before(async () => {
  gw = await startTestGateway();
  admin = new pg.Client({ connectionString: gw.directUrl });
  await admin.connect();
  work = await mkdtemp(join(tmpdir(), "agentgate-psql-"));
});

after(async () => {
  await admin?.end();
  await gw?.close();
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

/** Runs `story` against PostgreSQL directly, then through the gateway; one after the other, never both at once. */
async function bothWays<T>(story: (side: Side) => Promise<T>): Promise<Record<SideName, T>> {
  const direct = await story({ name: "direct", url: gw.directUrl });
  const gateway = await story({ name: "gateway", url: gw.url() });
  return { direct, gateway };
}

/** An empty schema of that name, so each run of a story starts from the same state under the same names. */
async function freshSchema(name: string): Promise<void> {
  await admin.query(`DROP SCHEMA IF EXISTS ${name} CASCADE; CREATE SCHEMA ${name}`);
}

/**
 * A working directory per story and side. psql runs inside it and names its files relatively, so messages that
 * mention a path ("psql:script.sql:12: ERROR: ...") are the same on both sides while the files are not shared.
 */
async function workDir(story: string, side: SideName): Promise<string> {
  const dir = join(work, story, side);
  await mkdir(dir, { recursive: true });
  return dir;
}

interface Printed {
  code: number | null;
  stdout: string;
  stderr: string;
}

function printed(result: PsqlResult, normalise: (s: string) => string = (s) => s): Printed {
  return { code: result.code, stdout: normalise(text(result.stdout)), stderr: normalise(text(result.stderr)) };
}

function assertSamePrinted(runs: Record<SideName, PsqlResult>, normalise?: (s: string) => string): Printed {
  const direct = printed(runs.direct, normalise);
  assert.deepEqual(printed(runs.gateway, normalise), direct, "psql printed something else through the gateway");
  return direct;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await delay(25);
  }
}

/** Waits until the session with this application_name is in `state` running a statement that matches `query`. */
function waitForSession(applicationName: string, state: string, query: string): Promise<number> {
  return waitFor(`a session "${applicationName}" ${state} in ${query}`, async () => {
    const { rows } = await admin.query<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND state = $2 AND query LIKE $3",
      [applicationName, state, query],
    );
    return rows[0]?.pid;
  });
}

function count(haystack: string, needle: string): number {
  return haystack.split(needle).length - 1;
}

// ---- \copy -------------------------------------------------------------------------------------------------------

const CITIES = ["Zürich", "São Paulo", "Kraków", "Москва", "東京", 'a "quoted" city', "comma,ville", " padded "];

/** One CSV field as PostgreSQL's COPY ... CSV writes it: NULL bare and empty, "" for the empty string. */
function csvField(value: string | null): string {
  if (value === null) return "";
  return value === "" || /[",\n\r]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

function csvRow(i: number): string {
  const names = [`Smith, "Jr." ${i}`, `café ${i} 日本 🐘`, `line one\nline two ${i}`, `plain${i}`, `tab\there ${i}`];
  const cents = (i * 7919) % 1_000_000;
  const amount = `${i % 13 === 0 ? "-" : ""}${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, "0")}`;
  const note = i % 7 === 0 ? null : i % 7 === 1 ? "" : `note ${i} ‘curly’ and \\backslash`;
  const fields = [String(i), names[i % names.length]!, i % 11 === 0 ? null : amount, note, CITIES[i % CITIES.length]!];
  return `${fields.map(csvField).join(",")}\n`;
}

const COPY_ROWS = 3000;

/** Rows 1..3000 written exactly as PostgreSQL writes them back, so `\copy ... TO` must reproduce this file. */
const INPUT_CSV = Array.from({ length: COPY_ROWS }, (_, i) => csvRow(i + 1)).join("");

const COPY_SCRIPT = `SET search_path = copy_story;
CREATE TABLE t (id int PRIMARY KEY, name text, amount numeric(12,2), note text, city text);
\\copy t FROM 'in.csv' CSV
SELECT count(*) AS total, count(amount) AS amounts, count(note) AS notes,
       count(*) FILTER (WHERE note = '') AS empty_notes, sum(amount) AS sum
  FROM t;
\\copy (SELECT * FROM t ORDER BY id) TO 'out.csv' CSV
\\copy (SELECT id, name, city FROM t WHERE id <= 6 ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)
COPY (SELECT id, amount, note FROM t WHERE id % 500 = 0 OR id = 7 ORDER BY id) TO STDOUT;
\\copy t (id, name, city) FROM STDIN CSV
100001,"inline, from the script",Oslo
100002,,"Reykjavík"
\\.
\\copy t FROM 'bad.csv' CSV
SELECT count(*) AS after_bad_copy FROM t;
SELECT id, name, city FROM t WHERE id > 100000 ORDER BY id;
`;

const BAD_CSV = "200001,fine,1.00,,Bern\n200002,fine too,2.00,,Genève\nnot-a-number,broken,3.00,,Basel\n";

// ---- 1,000,000 rows ----------------------------------------------------------------------------------------------

const MILLION = 1_000_000;

/** sha256 and size of what `COPY (SELECT i, md5(i::text) FROM generate_series(1, 1000000) i) TO STDOUT` prints. */
function expectedMillionCopy(): { sha256: string; size: number } {
  const hash = createHash("sha256");
  let size = 0;
  let chunk = "";
  for (let i = 1; i <= MILLION; i++) {
    chunk += `${i}\t${createHash("md5").update(String(i)).digest("hex")}\n`;
    if (i % 10_000 === 0) {
      hash.update(chunk);
      size += Buffer.byteLength(chunk);
      chunk = "";
    }
  }
  return { sha256: hash.digest("hex"), size };
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

// ---- transactions ------------------------------------------------------------------------------------------------

const TRANSACTION_SCRIPT = `SET search_path = tx_story;
CREATE TABLE acct (id int PRIMARY KEY, balance numeric NOT NULL CHECK (balance >= 0));
INSERT INTO acct VALUES (1, 100), (2, 50);
BEGIN;
UPDATE acct SET balance = balance - 30 WHERE id = 1;
SELECT 1/0 AS boom;
\\echo SQLSTATE :SQLSTATE: :LAST_ERROR_MESSAGE
UPDATE acct SET balance = balance + 30 WHERE id = 2;
ROLLBACK;
SELECT * FROM acct ORDER BY id;
BEGIN;
INSERT INTO acct VALUES (3, 10);
SELECT balance / 0 FROM acct;
COMMIT;
SELECT count(*) AS after_failed_commit FROM acct;
BEGIN;
UPDATE acct SET balance = balance - 30 WHERE id = 1;
SAVEPOINT before_insert;
INSERT INTO acct VALUES (1, 5);
SELECT 'ignored';
ROLLBACK TO SAVEPOINT before_insert;
UPDATE acct SET balance = balance + 30 WHERE id = 2;
SAVEPOINT before_overdraw;
UPDATE acct SET balance = balance - 1000 WHERE id = 2;
SELECT 'also ignored';
ROLLBACK TO before_overdraw;
RELEASE before_insert;
COMMIT;
SELECT * FROM acct ORDER BY id;
SELEC 1;
DO $$
BEGIN
  RAISE NOTICE 'about to fail: %', 42;
  RAISE EXCEPTION 'custom failure' USING ERRCODE = 'P0001', DETAIL = 'some detail', HINT = 'some hint';
END
$$;
SELECT 'still running' AS status;
`;

// ---- catalog and data types --------------------------------------------------------------------------------------

const CATALOG_SCRIPT = `SET search_path = catalog_story;
SET TimeZone = 'UTC';
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE t (
  id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  n numeric(10,3) NOT NULL DEFAULT 0,
  ts timestamptz,
  j jsonb,
  b bytea,
  a int[],
  m mood,
  note text COLLATE "C" CHECK (note <> 'forbidden')
);
CREATE INDEX t_ts ON t (ts);
CREATE UNIQUE INDEX t_note ON t (lower(note)) WHERE note IS NOT NULL;
COMMENT ON TABLE t IS 'catalog story';
COMMENT ON COLUMN t.j IS 'document, é';
CREATE VIEW v AS SELECT id, n * 2 AS doubled FROM t;
CREATE FUNCTION add(a int, b int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT a + b';
CREATE FUNCTION greet(who text DEFAULT 'world') RETURNS SETOF text LANGUAGE sql AS $$ SELECT 'hello ' || who $$;
INSERT INTO t (n, ts, j, b, a, m, note) VALUES
  (1.5, '2024-02-29 12:34:56.789+02', '{"k": [1, 2, {"x": null}], "é": "ü"}', '\\xdeadbeef00', '{1,NULL,3}', 'happy', 'first'),
  (-0.001, NULL, 'null', '', '{}', NULL, NULL),
  (12345.678, 'infinity', '"just a string"', NULL, NULL, 'sad', E'multi\\nline\\ttab');
\\dt
\\d+ t
\\d v
\\di
\\df
\\dT
\\dn catalog_story
SELECT * FROM t ORDER BY id;
SELECT 1::int2 AS i2, 9223372036854775807::int8 AS i8, 3.14159::numeric(10,4) AS num, 'NaN'::numeric AS nan,
       1e-10::float8 AS f8, 'Infinity'::float4 AS f4, '1 day 02:03:04.5'::interval AS iv, '2024-01-01'::date AS d,
       '23:59:59.999999'::time AS t, '2024-06-01 00:00:00+14'::timestamptz AS tstz,
       '2024-06-01 00:00:00'::timestamp AS ts, '{"b": 1, "a": [true, null]}'::json AS js,
       '\\x00ff10'::bytea AS by, ARRAY[['a', 'b c'], ['"q"', NULL]] AS arr2, NULL::text AS nul, '' AS empty,
       true AS yes, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS id, '192.168.0.1/24'::inet AS net,
       point(1, 2) AS pt, int4range(1, 10) AS rng, 'Ünïcödé 🐘 日本'::text AS uni;
\\x on
SELECT * FROM t ORDER BY id;
\\x off
\\pset format unaligned
SELECT * FROM t ORDER BY id;
\\pset format csv
SELECT * FROM t ORDER BY id;
\\pset format aligned
\\pset null '(null)'
\\pset border 2
SELECT id, a, m, note FROM t ORDER BY id;
SELECT add(2, 3), greet(), greet('psql');
`;

describe("psql through the gateway prints exactly what it prints against PostgreSQL", () => {
  it("runs a script with \\copy in both directions and writes the same file", async () => {
    const runs = await bothWays(async (side) => {
      await freshSchema("copy_story");
      const dir = await workDir("copy", side.name);
      await writeFile(join(dir, "script.sql"), COPY_SCRIPT);
      await writeFile(join(dir, "in.csv"), INPUT_CSV);
      await writeFile(join(dir, "bad.csv"), BAD_CSV);
      const result = await runPsql(side.url, ["-a", "-v", "ON_ERROR_STOP=0", "-f", "script.sql"], { cwd: dir });
      return { result, out: await readFile(join(dir, "out.csv")) };
    });

    const same = assertSamePrinted({ direct: runs.direct.result, gateway: runs.gateway.result });
    assert.ok(runs.gateway.out.equals(runs.direct.out), "out.csv through the gateway differs from out.csv direct");
    assert.equal(text(runs.gateway.out), INPUT_CSV, "\\copy TO did not give back what \\copy FROM loaded");
    assert.equal(same.code, 0);
    assert.match(same.stdout, new RegExp(`^COPY ${COPY_ROWS}$`, "m"));
    assert.match(same.stdout, /^ {2}3000 \| {4}2728 \| {2}2572 \| {9}429 \| 11482365\.78$/m);
    assert.match(same.stdout, /^id,name,city\n1,café 1 日本 🐘,São Paulo\n2,"line one\nline two 2",Kraków\n/m);
    assert.match(same.stdout, /^7\t554\.33\t\\N\n500\t9595\.00\tnote 500 ‘curly’ and \\\\backslash\n/m);
    assert.match(same.stdout, /^2500\t7975\.00\t\n/m);
    assert.match(same.stdout, /^ 100002 \| {25}\| Reykjavík$/m);
    assert.match(same.stdout, /^ after_bad_copy \n-+\n {11}3002\n/m, "the failed \\copy must not have added rows");
    assert.match(
      same.stderr,
      /^psql:script\.sql:\d+: ERROR: {2}invalid input syntax for type integer: "not-a-number"\n/,
    );
    assert.match(same.stderr, /\nCONTEXT: {2}COPY t, line 3, column id: "not-a-number"\n$/);
  });

  it("streams a 1,000,000-row COPY TO STDOUT unchanged", async () => {
    const expected = expectedMillionCopy();
    const query = `COPY (SELECT i, md5(i::text) FROM generate_series(1, ${MILLION}) i) TO STDOUT`;
    const runs = await bothWays(async (side) => {
      const file = join(await workDir("million", side.name), "copy.tsv");
      const result = await runPsql(side.url, ["-c", query], { stdoutFile: file, timeoutMs: 120_000 });
      return { result, size: (await stat(file)).size, sha256: await sha256File(file) };
    });

    const same = assertSamePrinted({ direct: runs.direct.result, gateway: runs.gateway.result });
    assert.deepEqual({ code: same.code, stderr: same.stderr }, { code: 0, stderr: "" });
    assert.deepEqual({ size: runs.direct.size, sha256: runs.direct.sha256 }, expected);
    assert.deepEqual({ size: runs.gateway.size, sha256: runs.gateway.sha256 }, expected);
  });

  it("delivers NOTIFY from one session to a LISTENing one", async () => {
    // PostgreSQL names the notifying backend's PID, which differs from run to run; it is replaced after checking
    // that it is the PID the notifying session itself reports (the gateway passes NotificationResponse through).
    const normalisePids = (s: string) =>
      s
        .replace(/from server process with PID \d+\./g, "from server process with PID <pid>.")
        .replace(/^\d+$/m, "<pid>");
    const runs = await bothWays(async (side) => {
      const applicationName = `listener-${side.name}`;
      const listener = spawnPsql(side.url, ["-v", "ON_ERROR_STOP=1"], {
        keepInputOpen: true,
        env: { PGAPPNAME: applicationName },
      });
      try {
        listener.write("LISTEN ch;\n");
        await waitForSession(applicationName, "idle", "LISTEN ch;%");
        const notifier = await runPsql(side.url, [
          "-A",
          "-t",
          "-c",
          "SELECT pg_backend_pid()",
          "-c",
          "NOTIFY ch, 'payload-é'",
        ]);
        listener.write("SELECT 1 AS after_notify;\n");
        listener.endInput();
        return { listener: await listener.done, notifier };
      } finally {
        listener.kill();
      }
    });

    for (const side of ["direct", "gateway"] as const) {
      const notifierPid = text(runs[side].notifier.stdout).split("\n")[0];
      assert.match(notifierPid ?? "", /^\d+$/);
      assert.match(
        text(runs[side].listener.stdout),
        new RegExp(
          `^Asynchronous notification "ch" with payload "payload-é" received from server process with PID ${notifierPid}\\.$`,
          "m",
        ),
        `${side}: the notification did not arrive`,
      );
    }
    assertSamePrinted({ direct: runs.direct.notifier, gateway: runs.gateway.notifier }, normalisePids);
    const listener = assertSamePrinted({ direct: runs.direct.listener, gateway: runs.gateway.listener }, normalisePids);
    assert.equal(listener.code, 0);
    assert.equal(listener.stderr, "");
    assert.match(listener.stdout, /^LISTEN\n/);
  });

  it("repeats a query with \\watch until interrupted", async () => {
    const runs = await bothWays(async (side) => {
      const watcher = spawnPsql(side.url, [], { input: "SELECT 42 AS answer \\watch 0.2\n" });
      try {
        // psql flushes after each result, so we can wait for the fourth before pressing Ctrl-C.
        await waitFor("four \\watch iterations", async () =>
          count(text(watcher.stdoutSoFar()), "(1 row)") >= 4 ? true : undefined,
        );
        watcher.interrupt();
        return await watcher.done;
      } finally {
        watcher.kill();
      }
    });

    // Each iteration starts with the wall-clock time ("Mon Jan  1 12:00:00 2024 (every 0.2s)"), and how many
    // iterations fit before Ctrl-C is a matter of timing: compare the first three with the time taken out. Ctrl-C
    // lands while psql sleeps between iterations or, rarely, while a query runs, when psql also cancels it and says
    // so; only those two lines are dropped from stderr.
    const firstThree = (s: string) =>
      s
        .replace(/^.+ \(every 0\.2s\)$/gm, "<time> (every 0.2s)")
        .split(/(?=^<time> \(every 0\.2s\)$)/m)
        .slice(0, 3)
        .join("");
    const interruptNoise = (s: string) =>
      s.replace(/^(Cancel request sent|ERROR: {2}canceling statement due to user request)\n/gm, "");
    const iteration = "<time> (every 0.2s)\n\n answer \n--------\n     42\n(1 row)\n\n";
    for (const side of ["direct", "gateway"] as const) {
      const run = runs[side];
      assert.match(text(run.stdout), /^\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4} \(every 0\.2s\)$/m);
      assert.equal(firstThree(text(run.stdout)), iteration.repeat(3), `${side}: unexpected \\watch output`);
    }
    assert.deepEqual(
      { code: runs.gateway.code, stderr: interruptNoise(text(runs.gateway.stderr)) },
      { code: runs.direct.code, stderr: interruptNoise(text(runs.direct.stderr)) },
    );
  });

  it("cancels a running pg_sleep on Ctrl-C", async () => {
    const runs = await bothWays(async (side) => {
      const applicationName = `sleeper-${side.name}`;
      const sleeper = spawnPsql(side.url, ["-c", "SELECT pg_sleep(30)"], {
        env: { PGAPPNAME: applicationName },
        timeoutMs: 20_000,
      });
      try {
        await waitForSession(applicationName, "active", "SELECT pg_sleep(30)");
        const interruptedAt = Date.now();
        sleeper.interrupt();
        const result = await sleeper.done;
        return { result, ms: Date.now() - interruptedAt };
      } finally {
        sleeper.kill();
      }
    });

    const same = assertSamePrinted({ direct: runs.direct.result, gateway: runs.gateway.result });
    assert.deepEqual(same, {
      code: 1,
      stdout: "",
      stderr: "Cancel request sent\nERROR:  canceling statement due to user request\n",
    });
    // Generous: only that the query did not run on to the end of its 30 s.
    assert.ok(runs.gateway.ms < 15_000, `the cancelled query took ${runs.gateway.ms} ms to end`);
  });

  it("reports errors in the middle of transactions and keeps aborted transactions aborted", async () => {
    const runs = await bothWays(async (side) => {
      await freshSchema("tx_story");
      const dir = await workDir("transactions", side.name);
      await writeFile(join(dir, "script.sql"), TRANSACTION_SCRIPT);
      const script = await runPsql(side.url, ["-a", "-v", "ON_ERROR_STOP=0", "-f", "script.sql"], { cwd: dir });
      const multi = await runPsql(side.url, [
        "-v",
        "ON_ERROR_STOP=0",
        "-c",
        "INSERT INTO tx_story.acct VALUES (10, 1); SELECT 1/0; INSERT INTO tx_story.acct VALUES (11, 1)",
        "-c",
        "BEGIN; INSERT INTO tx_story.acct VALUES (12, 1); SELECT nope FROM tx_story.acct; COMMIT",
        "-c",
        "SELECT 'still in the failed transaction'",
        "-c",
        "ROLLBACK",
        "-c",
        "SELECT count(*) AS after_multi FROM tx_story.acct",
      ]);
      return { script, multi };
    });

    const script = assertSamePrinted({ direct: runs.direct.script, gateway: runs.gateway.script });
    assert.equal(script.code, 0);
    assert.equal(count(script.stderr, "ERROR:  division by zero"), 2);
    assert.equal(
      count(script.stderr, "ERROR:  current transaction is aborted, commands ignored until end of transaction block"),
      3,
    );
    assert.match(script.stderr, /ERROR: {2}duplicate key value violates unique constraint "acct_pkey"\nDETAIL: /);
    assert.match(
      script.stderr,
      /ERROR: {2}new row for relation "acct" violates check constraint "acct_balance_check"\n/,
    );
    assert.match(script.stderr, /NOTICE: {2}about to fail: 42\n/);
    assert.match(script.stderr, /ERROR: {2}custom failure\nDETAIL: {2}some detail\nHINT: {2}some hint\nCONTEXT: /);
    assert.match(script.stdout, /^SQLSTATE 22012: division by zero$/m);
    assert.match(script.stdout, /^ROLLBACK\n/m);
    assert.match(
      script.stdout,
      /^ {2}1 \| {5}100\n {2}2 \| {6}50\n\(2 rows\)/m,
      "the first ROLLBACK left the table changed",
    );
    assert.match(script.stdout, /^ {2}1 \| {6}70\n {2}2 \| {6}80\n\(2 rows\)/m, "ROLLBACK TO kept the wrong changes");
    assert.match(script.stdout, /^ still running$/m);

    const multi = assertSamePrinted({ direct: runs.direct.multi, gateway: runs.gateway.multi });
    assert.equal(multi.code, 0, "psql's exit code is that of the last -c, which succeeded");
    assert.match(multi.stderr, /^ERROR: {2}division by zero\n/);
    assert.match(multi.stderr, /ERROR: {2}column "nope" does not exist\nLINE 1: /);
    assert.match(
      multi.stderr,
      /ERROR: {2}current transaction is aborted, commands ignored until end of transaction block\n$/,
    );
    assert.match(multi.stdout, /^ after_multi \n-+\n {11}2\n\(1 row\)/m, "a failed multi-statement string committed");
  });

  it("describes objects and formats every common data type the same way", async () => {
    const runs = await bothWays(async (side) => {
      await freshSchema("catalog_story");
      const dir = await workDir("catalog", side.name);
      await writeFile(join(dir, "script.sql"), CATALOG_SCRIPT);
      return runPsql(side.url, ["-a", "-v", "ON_ERROR_STOP=1", "-f", "script.sql"], { cwd: dir });
    });

    const same = assertSamePrinted(runs);
    assert.deepEqual({ code: same.code, stderr: same.stderr }, { code: 0, stderr: "" });
    assert.match(same.stdout, /Table "catalog_story\.t"/);
    assert.match(same.stdout, /"t_note" UNIQUE, btree \(lower\(note\)\) WHERE note IS NOT NULL/);
    assert.match(same.stdout, /\| add {3}\| integer {10}\| a integer, b integer/);
    assert.match(same.stdout, /2024-02-29 10:34:56\.789\+00/);
    assert.match(same.stdout, /\\xdeadbeef00/);
    assert.match(same.stdout, /\{\{a,"b c"\},\{"\\"q\\"",NULL\}\}/);
    assert.match(same.stdout, /Ünïcödé 🐘 日本/);
  });
});
