// Masking against inference, end to end: a principal whose columns are masked tries to read them without selecting
// them: tiling windows of a partially masked column, spelling a value out character by character with predicates
// (WHERE, JOIN, HAVING, FILTER, EXISTS, IN, LATERAL, CTEs, set operations, windows, ORDER BY, LIMIT), binary search
// with ranges, error, NULL and row-count oracles, and hashes of parts. Under the default `maskedPredicates`
// (whole-value) no clear value, and no run of it longer than the rule shows, may reach the client, on the wire or in
// what the attacker can assemble from many answers. Each attack, run as an auditor (exempt from the masks), does
// give the value away: the attacks are real and the search finds what they find. Whole-value lookups by a constant
// or a parameter keep returning the right rows.
import assert from "node:assert/strict";
import { Socket } from "node:net";
import { after, before, describe, it } from "node:test";
import type pg from "pg";
import { type PolicyGateway, startPolicyGateway } from "./testing/policy-gateway.ts";

const SSN = "731-94-2685";
const EMAIL = "zqxv.wombat@kelpmail.test";
const CARD = "4929173650284417";
const SALARY = 8391757;
/** The longest run of a masked value the rules show: `partial` keeps 4 characters of the email. */
const SHOWN = 4;

const POLICY = (predicates?: string) => `
rules:
  - name: agents-read-and-change
    match: { groups: [agents, auditors], classes: [read, write, copy-out, session, transaction, ddl] }
    effect: allow
masks:
  - column: public.customers.ssn
    strategy: redact
    groups: { unmasked: [auditors] }
  - column: public.customers.email
    strategy: partial
    keep: ${SHOWN}
    groups: { unmasked: [auditors] }
  - column: public.*.card
    strategy: hash
    groups: { unmasked: [auditors] }
  - column: public.customers.salary
    strategy: "null"
    groups: { unmasked: [auditors] }
${predicates === undefined ? "" : `maskedPredicates: ${predicates}`}
`;

const SCHEMA = `
  CREATE TABLE customers (id int PRIMARY KEY, name text, ssn text, email text, card text, salary int);
  INSERT INTO customers VALUES
    (1, 'Alice', '${SSN}', '${EMAIL}', '${CARD}', ${SALARY}),
    (2, 'Bob', '000-00-0000', 'bob@example.org', '5500005555555559', 1000),
    (3, 'Carol', NULL, NULL, NULL, NULL);
  CREATE TABLE orders (id int PRIMARY KEY, customer_id int, card text, note text);
  INSERT INTO orders VALUES (10, 1, '${CARD}', 'first'), (11, 2, '5500005555555559', 'second');
  CREATE VIEW loud_customers AS SELECT id, upper(ssn) AS loud FROM customers;
  CREATE VIEW email_heads AS SELECT id, left(email, 8) AS h8, left(email, 12) AS h12, left(email, 16) AS h16,
    left(email, 20) AS h20, email FROM customers;
`;

let pgw: PolicyGateway;

before(async () => {
  pgw = await startPolicyGateway({
    rules: POLICY(), // maskedPredicates left out: the default
    clients: { agent: ["agents"], auditor: ["auditors"] },
    audit: true,
    masking: true,
    schema: SCHEMA,
  });
});

after(() => pgw.close());

/** A node-postgres client as `clientId`, with every byte it receives recorded. */
async function connectAs(clientId: string): Promise<{ client: pg.Client; wire: () => Buffer }> {
  const socket = new Socket();
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  const client = await pgw.connect(clientId, { stream: () => socket });
  return { client, wire: () => Buffer.concat(chunks) };
}

/** What an attack gives its author: every byte received, and what it assembled from the answers. */
interface Outcome {
  wire: Buffer;
  assembled: string;
  errors: string[];
}

type Attack = (c: pg.Client, errors: string[]) => Promise<string>;

async function attackAs(clientId: string, attack: Attack): Promise<Outcome> {
  const { client, wire } = await connectAs(clientId);
  const errors: string[] = [];
  let assembled = "";
  try {
    assembled = await attack(client, errors);
  } finally {
    await client.end();
  }
  return { wire: wire(), assembled, errors };
}

// A leak is a run of more than SHOWN characters of a clear value, whatever separates them: letters and digits only
// are compared, so "7.3.1.9.4", "7,3,1" and "****7319" all count.
const alnum = (s: string) => s.replace(/[^A-Za-z0-9]/g, "");
const WINDOWS = [SSN, EMAIL, CARD, String(SALARY)].flatMap((value) => {
  const v = alnum(value);
  return Array.from({ length: v.length - SHOWN }, (_, i) => v.slice(i, i + SHOWN + 1));
});

/** The runs of clear values (longer than the rules show) found in what the attacker got. */
function leaks(outcome: Outcome): string[] {
  const seen = alnum(outcome.wire.toString("latin1")) + alnum(outcome.assembled) + alnum(outcome.errors.join(" "));
  return WINDOWS.filter((w) => seen.includes(w));
}

/** One query; its rows (every cell, in order) are what the attacker reads. */
const q =
  (sql: string, values?: unknown[]): Attack =>
  async (c, errors) => {
    try {
      const result = await c.query({ text: sql, values, rowMode: "array" });
      return (result.rows as unknown[][]).map((row) => row.map((cell) => String(cell ?? "")).join("")).join("");
    } catch (error) {
      errors.push((error as Error).message);
      return "";
    }
  };

/** Several statements on one session. */
const seq =
  (...sqls: string[]): Attack =>
  async (c, errors) => {
    let out = "";
    for (const sql of sqls) out += await q(sql)(c, errors);
    return out;
  };

const SSN_CHARS = [..."0123456789-"];

/**
 * Spells a value out one bit at a time: for each position, the first candidate the oracle says yes to. A refused
 * probe says no.
 */
function spell(length: number, probe: (c: pg.Client, pos: number, ch: string) => Promise<boolean>): Attack {
  return async (c, errors) => {
    let out = "";
    for (let pos = 1; pos <= length; pos++) {
      for (const ch of SSN_CHARS) {
        let yes = false;
        try {
          yes = await probe(c, pos, ch);
        } catch (error) {
          errors.push((error as Error).message);
        }
        if (yes) {
          out += ch;
          break;
        }
      }
    }
    return out;
  };
}

/** An oracle that answers by whether the statement fails with `error`. */
const failsWith =
  (sql: string, error: RegExp) =>
  async (c: pg.Client, pos: number, ch: string): Promise<boolean> => {
    try {
      await c.query(sql, [pos, ch]);
      return false;
    } catch (e) {
      return error.test((e as Error).message);
    }
  };

/** An oracle that answers by the rows it returns. */
const answers =
  (sql: string, yes: (rows: Record<string, unknown>[]) => boolean) =>
  async (c: pg.Client, pos: number, ch: string): Promise<boolean> => {
    try {
      return yes((await c.query(sql, [pos, ch])).rows);
    } catch {
      return false;
    }
  };

/** Binary search on the whole value: the largest candidate at each position with `value >= prefix || candidate`. */
function rangeSearch(sql: (prefix: string) => [string, unknown[]]): Attack {
  return async (c) => {
    let prefix = "";
    for (let pos = 1; pos <= SSN.length; pos++) {
      let best: string | undefined;
      for (const ch of [...SSN_CHARS].sort()) {
        const [text, values] = sql(prefix + ch);
        try {
          if ((await c.query(text, values)).rows.length > 0) best = ch;
        } catch {
          // refused: no answer
        }
      }
      if (best === undefined) break;
      prefix += best;
    }
    return prefix;
  };
}

// FROM items that spell: every position g of the SSN, every candidate character ch.
const GRID = "generate_series(1, 11) g, unnest(string_to_array('0123456789-', NULL)) ch";
const SPELLED = "string_agg(ch, '.' ORDER BY g)";

interface Case {
  what: string;
  attack: Attack;
  /** The refusal expected under the default, when it is one (the masked column and the clause). */
  refused?: RegExp;
}

const refusedIn = (column: string, clause: string) =>
  new RegExp(`masked column "${column}" may not be used in ${clause.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`);

const CASES: Case[] = [
  // Tiling: windows of a partially masked column, each of which would show its own last characters.
  {
    what: "substr() windows of a partial column",
    attack: q(
      "SELECT substr(email, 1, 8), substr(email, 5, 8), substr(email, 9, 8), substr(email, 13, 8), substr(email, 17, 8) FROM customers WHERE id = 1",
    ),
  },
  {
    what: "left() windows",
    attack: q(
      "SELECT left(email, 8), left(email, 12), left(email, 16), left(email, 20), left(email, 24) FROM customers WHERE id = 1",
    ),
  },
  {
    what: "right() of left() windows",
    attack: q(
      "SELECT right(left(email, 8), 8), right(left(email, 12), 8), right(left(email, 16), 8), right(left(email, 20), 8) FROM customers WHERE id = 1",
    ),
  },
  {
    what: "overlay() windows",
    attack: q(
      "SELECT overlay(email placing '' from 9 for 99), overlay(email placing '' from 13 for 99), overlay(email placing '' from 17 for 99), overlay(email placing '' from 21 for 99) FROM customers WHERE id = 1",
    ),
  },
  {
    what: "split_part() windows",
    attack: q(
      "SELECT left(split_part(email, '@', 1), 7), split_part(email, '@', 1), left(split_part(email, '@', 2), 8), split_part(email, '@', 2) FROM customers WHERE id = 1",
    ),
  },
  {
    what: "regexp_replace() windows",
    attack: q(
      "SELECT regexp_replace(email, '^(.{8}).*$', '\\1'), regexp_replace(email, '^(.{12}).*$', '\\1'), regexp_replace(email, '^(.{16}).*$', '\\1'), regexp_replace(email, '^(.{20}).*$', '\\1') FROM customers WHERE id = 1",
    ),
  },
  {
    what: "substring(... from ... for ...) windows",
    attack: q(
      "SELECT substring(email from 1 for 8), substring(email from 1 for 12), substring(email from 1 for 16), substring(email from 1 for 20) FROM customers WHERE id = 1",
    ),
  },
  {
    what: "windows through a CTE",
    attack: q(
      "WITH w AS (SELECT left(email, 8) a, left(email, 12) b, left(email, 16) c, left(email, 20) d FROM customers WHERE id = 1) SELECT a, b, c, d FROM w",
    ),
  },
  {
    what: "windows as rows of a UNION ALL",
    attack: q(
      "SELECT left(email, 8) FROM customers WHERE id = 1 UNION ALL SELECT left(email, 12) FROM customers WHERE id = 1 UNION ALL SELECT left(email, 16) FROM customers WHERE id = 1 UNION ALL SELECT left(email, 20) FROM customers WHERE id = 1",
    ),
  },
  { what: "windows through a view", attack: q("SELECT h8, h12, h16, h20 FROM email_heads WHERE id = 1") },
  {
    what: "windows with parameters",
    attack: q(
      "SELECT left(email, $1), left(email, $2), left(email, $3), left(email, $4) FROM customers WHERE id = 1",
      [8, 12, 16, 20],
    ),
  },
  {
    what: "windows from a cursor",
    attack: seq(
      "BEGIN",
      "DECLARE w CURSOR FOR SELECT left(email, 8), left(email, 12), left(email, 16), left(email, 20) FROM customers WHERE id = 1",
      "FETCH ALL FROM w",
      "COMMIT",
    ),
  },
  {
    what: "windows from PREPARE / EXECUTE",
    attack: seq(
      "PREPARE w AS SELECT left(email, 8), left(email, 12), left(email, 16), left(email, 20) FROM customers WHERE id = 1",
      "EXECUTE w",
    ),
  },
  {
    what: "windows in a row_to_json()",
    attack: q(
      "SELECT row_to_json(x) FROM (SELECT left(email, 8) a, left(email, 12) b, left(email, 16) c, left(email, 20) d FROM customers WHERE id = 1) x",
    ),
  },
  {
    what: "hashes of single characters against a dictionary of hashes",
    attack: async (c) => {
      // Each digit, "derived" from the card so that it is hashed with the card's key, then each of its digits.
      const dictionary = new Map<string, string>();
      const d = await c.query({
        text: "SELECT x || substr(card, 1, 0) AS h, x FROM customers, unnest(string_to_array('0123456789', NULL)) x WHERE id = 1",
        rowMode: "array",
      });
      for (const [h, x] of d.rows as string[][]) if (h !== undefined && x !== undefined) dictionary.set(h, x);
      const p = await c.query({
        text: "SELECT substr(card, g, 1) FROM customers, generate_series(1, 16) g WHERE id = 1 ORDER BY g",
        rowMode: "array",
      });
      return (p.rows as string[][]).map(([h]) => dictionary.get(h ?? "") ?? "").join("");
    },
  },
  // Spelling out with predicates: one query, one row per position whose candidate matches.
  {
    what: "WHERE substr() = each character (generate_series)",
    attack: q(`SELECT ${SPELLED} FROM customers, ${GRID} WHERE id = 1 AND substr(ssn, g, 1) = ch`),
    refused: refusedIn("ssn", "WHERE"),
  },
  {
    what: "WHERE substring(... from ... for 1)",
    attack: q(`SELECT ${SPELLED} FROM customers, ${GRID} WHERE id = 1 AND substring(ssn from g for 1) = ch`),
    refused: refusedIn("ssn", "WHERE"),
  },
  {
    what: "LIKE prefix probing",
    attack: q(`SELECT ${SPELLED} FROM customers, ${GRID} WHERE id = 1 AND ssn LIKE repeat('_', g - 1) || ch || '%'`),
    refused: refusedIn("ssn", "WHERE (LIKE)"),
  },
  {
    what: "a regular expression",
    attack: q(`SELECT ${SPELLED} FROM customers, ${GRID} WHERE id = 1 AND ssn ~ ('^.{' || (g - 1) || '}' || ch)`),
    refused: refusedIn("ssn", "WHERE (operator ~)"),
  },
  {
    what: "ascii() compared",
    attack: q(`SELECT ${SPELLED} FROM customers, ${GRID} WHERE id = 1 AND ascii(substr(ssn, g, 1)) = ascii(ch)`),
    refused: refusedIn("ssn", "WHERE"),
  },
  {
    what: "md5() of a part compared",
    attack: q(`SELECT ${SPELLED} FROM customers, ${GRID} WHERE id = 1 AND md5(substr(ssn, g, 1)) = md5(ch)`),
    refused: refusedIn("ssn", "WHERE"),
  },
  {
    what: "position() in a part",
    attack: q(`SELECT ${SPELLED} FROM customers, ${GRID} WHERE id = 1 AND position(ch in substr(ssn, g, 1)) = 1`),
    refused: refusedIn("ssn", "WHERE"),
  },
  {
    what: "JOIN ... ON substr()",
    attack: q(
      `SELECT ${SPELLED} FROM generate_series(1, 11) g CROSS JOIN unnest(string_to_array('0123456789-', NULL)) ch JOIN customers c ON c.id = 1 AND substr(c.ssn, g, 1) = ch`,
    ),
    refused: refusedIn("ssn", "JOIN ... ON"),
  },
  {
    what: "HAVING",
    attack: q(
      `SELECT ${SPELLED} FROM (SELECT g, ch FROM customers, ${GRID} WHERE id = 1 GROUP BY g, ch, ssn HAVING substr(ssn, g, 1) = ch) s`,
    ),
    refused: /masked column "ssn" may not be used in (GROUP BY|HAVING)/,
  },
  {
    what: "CASE WHEN in the select list",
    attack: q(
      `SELECT string_agg(CASE WHEN substr(ssn, g, 1) = ch THEN ch ELSE '' END, '.' ORDER BY g) FROM customers, ${GRID} WHERE id = 1`,
    ),
    refused: refusedIn("ssn", "CASE WHEN"),
  },
  {
    what: "an aggregate's FILTER",
    attack: q(`SELECT ${SPELLED} FILTER (WHERE substr(ssn, g, 1) = ch) FROM customers, ${GRID} WHERE id = 1`),
    refused: refusedIn("ssn", "FILTER"),
  },
  {
    what: "a correlated scalar subquery",
    attack: q(
      "SELECT string_agg((SELECT ch FROM unnest(string_to_array('0123456789-', NULL)) ch WHERE substr(c.ssn, g, 1) = ch), '.' ORDER BY g) FROM customers c, generate_series(1, 11) g WHERE id = 1",
    ),
    refused: refusedIn("ssn", "WHERE"),
  },
  {
    what: "EXISTS",
    attack: q(
      `SELECT ${SPELLED} FROM ${GRID} WHERE EXISTS (SELECT 1 FROM customers WHERE id = 1 AND substr(ssn, g, 1) = ch)`,
    ),
    refused: refusedIn("ssn", "WHERE"),
  },
  {
    what: "a CTE that filters",
    attack: q(
      `WITH hits AS (SELECT g, ch FROM customers, ${GRID} WHERE id = 1 AND substr(ssn, g, 1) = ch) SELECT ${SPELLED} FROM hits`,
    ),
    refused: refusedIn("ssn", "WHERE"),
  },
  {
    what: "LATERAL",
    attack: q(
      `SELECT ${SPELLED} FROM ${GRID}, LATERAL (SELECT 1 FROM customers WHERE id = 1 AND substr(ssn, g, 1) = ch) l`,
    ),
    refused: refusedIn("ssn", "WHERE"),
  },
  {
    what: "a derived table's computed column filtered outside",
    attack: q(
      `SELECT ${SPELLED} FROM (SELECT g, ch, substr(ssn, g, 1) AS s FROM customers, ${GRID} WHERE id = 1) x WHERE s = ch`,
    ),
    refused: refusedIn("ssn", "WHERE"),
  },
  {
    what: "INTERSECT",
    attack: q(
      `SELECT ${SPELLED} FROM (SELECT g, ch FROM ${GRID} INTERSECT SELECT g, substr(ssn, g, 1) FROM customers, generate_series(1, 11) g WHERE id = 1) x`,
    ),
    refused: refusedIn("ssn", "INTERSECT"),
  },
  {
    what: "IN (subquery)",
    attack: q(`SELECT ${SPELLED} FROM ${GRID} WHERE ch IN (SELECT substr(ssn, g, 1) FROM customers WHERE id = 1)`),
    refused: refusedIn("ssn", "WHERE"),
  },
  {
    what: "a window's ORDER BY",
    attack: q(
      `SELECT ${SPELLED} FROM (SELECT g, ch, rank() OVER (PARTITION BY g ORDER BY substr(ssn, g, 1) = ch DESC) r FROM customers, ${GRID} WHERE id = 1) x WHERE r = 1`,
    ),
    refused: refusedIn("ssn", "a window's ORDER BY"),
  },
  {
    what: "DISTINCT ON ... ORDER BY",
    attack: q(
      `SELECT ${SPELLED} FROM (SELECT DISTINCT ON (g) g, ch FROM customers, ${GRID} WHERE id = 1 ORDER BY g, substr(ssn, g, 1) = ch DESC) x`,
    ),
    refused: refusedIn("ssn", "ORDER BY"),
  },
  {
    what: "a grouped bool_or() filtered outside",
    attack: q(
      `SELECT ${SPELLED} FROM (SELECT g, ch, bool_or(substr(ssn, g, 1) = ch) hit FROM customers, ${GRID} WHERE id = 1 GROUP BY g, ch) x WHERE hit`,
    ),
    refused: /masked column "ssn" may not be used in/,
  },
  {
    what: "row counts of generate_series() in FROM",
    attack: q(
      "SELECT string_agg(chr(n::int), '.' ORDER BY g) FROM (SELECT g, (SELECT count(*) FROM generate_series(1, ascii(substr(c.ssn, g, 1)))) n FROM customers c, generate_series(1, 11) g WHERE id = 1) x",
    ),
    refused: /masked column "ssn" may not be used in (a function in )?FROM/,
  },
  {
    what: "row counts of a set-returning function in the select list",
    attack: q(
      "SELECT string_agg(chr(n::int), '.' ORDER BY g) FROM (SELECT g, count(*) n FROM (SELECT g, generate_series(1, ascii(substr(ssn, g, 1))) FROM customers, generate_series(1, 11) g WHERE id = 1) y GROUP BY g) x",
    ),
    refused: refusedIn("ssn", "the select list"),
  },
  // Oracles: one bit per statement, many statements.
  {
    what: "division by zero in a CASE",
    attack: spell(
      11,
      failsWith(
        "SELECT 1 / (CASE WHEN substr(ssn, $1, 1) = $2 THEN 0 ELSE 1 END) FROM customers WHERE id = 1",
        /division by zero/,
      ),
    ),
  },
  {
    what: "a failed cast in a CASE",
    attack: spell(
      11,
      failsWith(
        "SELECT (CASE WHEN substr(ssn, $1, 1) = $2 THEN 'x' ELSE '1' END)::int FROM customers WHERE id = 1",
        /invalid input syntax/,
      ),
    ),
  },
  {
    what: "division by zero without a CASE",
    attack: spell(
      11,
      failsWith(
        "SELECT 1 / (ascii(substr(ssn, $1::int, 1)) - ascii($2::text)) FROM customers WHERE id = 1",
        /division by zero/,
      ),
    ),
  },
  {
    what: "whether a row comes back",
    attack: spell(
      11,
      answers("SELECT 1 FROM customers WHERE id = 1 AND substr(ssn, $1::int, 1) = $2", (rows) => rows.length > 0),
    ),
  },
  {
    what: "NULL from nullif()",
    attack: spell(
      11,
      answers(
        "SELECT nullif(substr(ssn, $1::int, 1), $2) AS v FROM customers WHERE id = 1",
        (rows) => rows.length === 1 && rows[0]!.v === null,
      ),
    ),
  },
  {
    what: "NULL from a regular expression",
    attack: spell(
      11,
      answers(
        "SELECT substring(ssn from '^' || repeat('.', $1::int - 1) || $2) AS v FROM customers WHERE id = 1",
        (rows) => rows.length === 1 && rows[0]!.v !== null,
      ),
    ),
  },
  {
    what: "count() of a computed value",
    attack: spell(
      11,
      answers(
        "SELECT count(nullif(substr(ssn, $1::int, 1), $2))::int AS n FROM customers WHERE id = 1",
        (rows) => rows[0]?.n === 0,
      ),
    ),
  },
  {
    what: "LIMIT",
    attack: spell(
      11,
      answers(
        "SELECT id FROM customers LIMIT (SELECT (substr(ssn, $1::int, 1) = $2)::int FROM customers WHERE id = 1)",
        (rows) => rows.length > 0,
      ),
    ),
  },
  {
    what: "ORDER BY a condition",
    attack: spell(
      11,
      answers(
        "SELECT id FROM customers WHERE id IN (1, 2) ORDER BY substr(ssn, $1::int, 1) = $2 DESC, id DESC LIMIT 1",
        (rows) => rows[0]?.id === 1,
      ),
    ),
  },
  {
    what: "binary search with >=",
    attack: rangeSearch((prefix) => ['SELECT 1 FROM customers WHERE id = 1 AND ssn COLLATE "C" >= $1', [prefix]]),
  },
  {
    what: "binary search with BETWEEN",
    attack: rangeSearch((prefix) => [
      'SELECT 1 FROM customers WHERE id = 1 AND ssn COLLATE "C" BETWEEN $1 AND $2',
      [prefix, `${prefix}~~~~~~~~~~~~`],
    ]),
  },
  {
    what: "binary search with < on a plain column",
    attack: async (c) => {
      const chars = [...SSN_CHARS].sort((a, b) => (a < b ? -1 : 1));
      let prefix = "";
      for (let pos = 1; pos <= SSN.length; pos++) {
        let best: string | undefined;
        for (const ch of chars) {
          const rows = await c.query("SELECT 1 FROM customers WHERE id = 1 AND NOT (ssn < $1)", [prefix + ch]).then(
            (r) => r.rows,
            () => [],
          );
          if (rows.length > 0) best = ch;
        }
        if (best === undefined) break;
        prefix += best;
      }
      return prefix;
    },
  },
];

/** Uses that tell no part of a value to the client, refused under the default with the column and the clause named. */
const REFUSED: [string, RegExp][] = [
  ["SELECT count(*) FROM customers GROUP BY ssn", refusedIn("ssn", "GROUP BY")],
  ["SELECT DISTINCT ssn FROM customers", refusedIn("ssn", "DISTINCT")],
  ["SELECT count(*) OVER (PARTITION BY email) FROM customers", refusedIn("email", "PARTITION BY")],
  ["SELECT id FROM customers ORDER BY ssn", refusedIn("ssn", "ORDER BY")],
  ["SELECT id FROM customers ORDER BY 2", /./], // placeholder replaced below
  ["SELECT id FROM customers WHERE length(ssn) = 11", refusedIn("ssn", "WHERE")],
  ["SELECT id FROM customers WHERE md5(ssn) = md5('x')", refusedIn("ssn", "WHERE")],
  ["SELECT ssn::int FROM customers", refusedIn("ssn", "the select list (cast to int4)")],
  ["SELECT pg_sleep(0) FROM customers WHERE ssn > '5'", refusedIn("ssn", "WHERE (operator >)")],
  ["SELECT id FROM loud_customers WHERE loud = 'X'", refusedIn("loud", "WHERE")],
  ["SELECT c.id FROM customers c JOIN orders o ON c.card = o.note", refusedIn("card", "JOIN ... ON")],
  ["SELECT id FROM customers ORDER BY card", refusedIn("card", "ORDER BY")],
  ["SELECT count(DISTINCT ssn) FROM customers", refusedIn("ssn", "count()")],
  ["SELECT string_agg(name, ',' ORDER BY ssn) FROM customers", refusedIn("ssn", "an aggregate's ORDER BY")],
  ["SELECT ssn FROM customers UNION SELECT name FROM customers", refusedIn("ssn", "UNION")],
  ["SELECT id FROM customers WHERE salary > 5000", refusedIn("salary", "WHERE (operator >)")],
  ["SELECT salary * 2 FROM customers", refusedIn("salary", "the select list (operator *)")],
  ["CREATE TEMP VIEW tv AS SELECT id, ssn FROM customers", refusedIn("ssn", "a temporary view")],
  [
    "SELECT id FROM customers WHERE to_jsonb(customers)::text LIKE '%7%'",
    /masked column "public\.customers\.\w+" may not be used in WHERE/,
  ],
];
REFUSED[4] = ["SELECT id, ssn FROM customers ORDER BY 2", refusedIn("ssn", "ORDER BY")];

describe("masking against inference (maskedPredicates: whole-value, the default)", { timeout: 600_000 }, () => {
  it(`${CASES.length} attacks give the auditor the value and the masked agent nothing of it`, async () => {
    const failures: string[] = [];
    for (const { what, attack, refused } of CASES) {
      const auditor = await attackAs("auditor", attack);
      if (leaks(auditor).length === 0) failures.push(`${what}: the attack does not work even unmasked`);
      const agent = await attackAs("agent", attack);
      const found = leaks(agent);
      if (found.length > 0) failures.push(`${what}: ${found.length} runs of a masked value reached the agent`);
      if (refused !== undefined && !agent.errors.some((e) => refused.test(e))) {
        failures.push(`${what}: expected a refusal matching ${refused}, got ${JSON.stringify(agent.errors)}`);
      }
    }
    assert.deepEqual(failures, []);
  });

  it(`${REFUSED.length} other uses are refused with 42501, naming the column and the clause`, async () => {
    const { client } = await connectAs("agent");
    try {
      for (const [sql, expected] of REFUSED) {
        const error = await client.query(sql).then(
          () => undefined,
          (e: { code?: string; message: string }) => e,
        );
        assert.equal(error?.code, "42501", sql);
        assert.match(error.message, expected, sql);
      }
      // The session goes on after each refusal.
      assert.equal((await client.query("SELECT 1 AS one")).rows[0].one, 1);
    } finally {
      await client.end();
    }
  });

  it("whole-value lookups by a constant or a parameter return the right rows, masked", async () => {
    const { client, wire } = await connectAs("agent");
    const ids = async (sql: string, values?: unknown[]) =>
      (await client.query(sql, values)).rows.map((r: { id: number }) => r.id);
    try {
      const one = await client.query("SELECT id, ssn, email FROM customers WHERE ssn = '731-94-2685'");
      assert.deepEqual(one.rows, [{ id: 1, ssn: "****", email: "****test" }]);
      assert.deepEqual(await ids("SELECT id FROM customers WHERE ssn = $1", [SSN]), [1]);
      assert.deepEqual(await ids("SELECT id FROM customers WHERE ssn IN ('nope', $1) ORDER BY id", [SSN]), [1]);
      assert.deepEqual(
        await ids("SELECT id FROM customers WHERE ssn = ANY($1) ORDER BY id", [[SSN, "000-00-0000"]]),
        [1, 2],
      );
      assert.deepEqual(await ids("SELECT id FROM customers WHERE ssn IS NULL"), [3]);
      assert.deepEqual(await ids("SELECT id FROM customers WHERE ssn IS NOT NULL AND ssn <> $1", [SSN]), [2]);
      assert.deepEqual(await ids("SELECT id FROM customers WHERE NOT (ssn = $1) ORDER BY id", [SSN]), [2]);
      assert.deepEqual(await ids("SELECT id FROM customers WHERE email = $1", [EMAIL]), [1]);
      assert.deepEqual(await ids("SELECT id FROM customers WHERE card = $1", [CARD]), [1]);
      assert.deepEqual(await ids("SELECT id FROM customers WHERE salary = $1", [SALARY]), [1]);
      assert.deepEqual(await ids("SELECT id FROM (SELECT * FROM customers) s WHERE s.ssn = $1", [SSN]), [1]);
      assert.deepEqual(
        await ids(
          "SELECT id FROM orders o WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = o.customer_id AND c.ssn = $1)",
          [SSN],
        ),
        [10],
      );
      assert.deepEqual(await ids("SELECT id FROM customers WHERE ssn IN (SELECT $1::text)", [SSN]), [1]);
      // hash columns: joined to each other, grouped and counted by whole value.
      assert.deepEqual(
        await ids("SELECT o.id FROM orders o JOIN customers c ON o.card = c.card ORDER BY o.id"),
        [10, 11],
      );
      assert.deepEqual(await ids("SELECT o.id FROM orders o JOIN customers c USING (card) ORDER BY o.id"), [10, 11]);
      const grouped = await client.query("SELECT card, count(*)::int AS n FROM customers GROUP BY card");
      assert.equal(grouped.rows.length, 3);
      for (const row of grouped.rows) assert.ok(row.card === null || /^h:[0-9a-f]{16}$/.test(row.card));
      const distinct = await client.query("SELECT count(DISTINCT card)::int AS n FROM customers");
      assert.deepEqual(distinct.rows, [{ n: 2 }]);
      // The agent's own temporary table holds no masked values: any predicate on it.
      await client.query("CREATE TEMP TABLE mine (x int, t text)");
      await client.query("INSERT INTO mine VALUES (1, 'a'), (2, 'b'), (3, 'c')");
      const mine = await client.query("SELECT x FROM mine WHERE x > $1 AND t LIKE '%' ORDER BY t DESC", [1]);
      assert.deepEqual(mine.rows, [{ x: 3 }, { x: 2 }]);
      // A plain reference of a partial column still shows its tail; a computed one is redacted whole.
      const shown = await client.query("SELECT email, lower(email) AS l, email || '' AS c FROM customers WHERE id = 1");
      assert.deepEqual(shown.rows, [{ email: "****test", l: "****", c: "****" }]);
    } finally {
      await client.end();
    }
    assert.deepEqual(leaks({ wire: wire(), assembled: "", errors: [] }), []);
  });

  it("with maskedPredicates: allow (the opt-out), predicate attacks do read values: the search finds them", async () => {
    assert.equal(await pgw.setRules(POLICY("allow")), true);
    try {
      const spelled = CASES.filter((c) => c.refused !== undefined);
      let leaking = 0;
      for (const { attack } of spelled) if (leaks(await attackAs("agent", attack)).length > 0) leaking++;
      // Those whose output is computed from the masked column stay masked even so (CASE in the select list).
      assert.ok(leaking >= spelled.length - 3, `${leaking} of ${spelled.length} leak without the checks`);
    } finally {
      await pgw.setRules(POLICY());
    }
  });
});
