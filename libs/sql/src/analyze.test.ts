import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import {
  ADMIN_BUILTINS,
  DYNAMIC_BUILTINS,
  HARMLESS_VOLATILE_BUILTINS,
  READ_ONLY_BUILTINS,
  SESSION_BUILTINS,
  WRITE_BUILTINS,
} from "./builtins.ts";
import { STATEMENT_FIXTURES, type StatementFixture } from "./fixtures/statements.ts";
import {
  type Analysis,
  type AnalyzeOptions,
  analyze,
  type FunctionCatalog,
  initSqlAnalysis,
  maxClass,
  SqlAnalysisError,
  STATEMENT_CLASSES,
  type StatementClass,
  type StatementFlags,
  type TargetFacts,
} from "./index.ts";

before(() => initSqlAnalysis());

function catalogOf(entries: Readonly<Record<string, "i" | "s" | "v">>): FunctionCatalog {
  return { volatility: (name) => entries[name] };
}

function optionsOf(fixture: StatementFixture): AnalyzeOptions {
  const options: AnalyzeOptions = {};
  if (fixture.catalog !== undefined) options.catalog = catalogOf(fixture.catalog);
  if (fixture.prepared !== undefined) options.prepared = new Map(Object.entries(fixture.prepared));
  return options;
}

/** Sorted union of one list over all statements. */
function union(analysis: Analysis, pick: (s: Analysis["statements"][number]) => readonly string[]): string[] {
  return [...new Set(analysis.statements.flatMap(pick))].sort();
}

function classesOf(analysis: Analysis): StatementClass[] {
  const all = new Set(analysis.statements.flatMap((s) => s.classes));
  return STATEMENT_CLASSES.filter((name) => all.has(name));
}

function flagsOf(analysis: Analysis): StatementFlags {
  return Object.assign({}, ...analysis.statements.map((s) => s.flags));
}

describe("statement fixtures", () => {
  it("cover every class with at least 150 statements", () => {
    assert.ok(STATEMENT_FIXTURES.length >= 150, `only ${STATEMENT_FIXTURES.length} fixtures`);
    const covered = new Set(STATEMENT_FIXTURES.map((fixture) => fixture.class));
    assert.deepEqual(
      STATEMENT_CLASSES.filter((name) => !covered.has(name)),
      [],
    );
  });

  for (const fixture of STATEMENT_FIXTURES) {
    const label = `${fixture.class}: ${fixture.sql}${fixture.catalog === undefined ? "" : " (with catalog)"}`;
    it(label, () => {
      const analysis = analyze(fixture.sql, optionsOf(fixture));
      assert.equal(analysis.statements.length, fixture.statements ?? 1, "statements");
      assert.equal(analysis.class, fixture.class, "class");
      assert.deepEqual(
        union(analysis, (s) => s.reads),
        fixture.reads,
        "reads",
      );
      assert.deepEqual(
        union(analysis, (s) => s.writes),
        fixture.writes,
        "writes",
      );
      if (fixture.classes !== undefined) assert.deepEqual(classesOf(analysis), fixture.classes, "classes");
      if (fixture.functions !== undefined) {
        assert.deepEqual(
          union(analysis, (s) => s.functions),
          fixture.functions,
          "functions",
        );
      }
      if (fixture.columns !== undefined) {
        assert.deepEqual(
          union(analysis, (s) => s.columns),
          fixture.columns,
          "columns",
        );
      }
      const flags = flagsOf(analysis);
      for (const [key, value] of Object.entries(fixture.flags ?? {})) {
        assert.deepEqual(flags[key as keyof StatementFlags], value, `flags.${key}`);
      }
      if (fixture.flags !== undefined && !("unknownFunctions" in fixture.flags)) {
        assert.equal(flags.unknownFunctions, undefined, "no unknown functions");
      }
      for (const statement of analysis.statements) {
        assert.equal(statement.class, maxClass(statement.classes), "class is the maximum of classes");
      }
    });
  }
});

describe("analyze", () => {
  it("analyses every statement of a multi-statement string and slices each one's text", () => {
    const analysis = analyze("SELECT 1;  /* gap */ DROP TABLE t ;");
    assert.equal(analysis.class, "ddl");
    assert.deepEqual(
      analysis.statements.map((s) => [s.kind, s.class, s.text]),
      [
        ["SelectStmt", "read", "SELECT 1"],
        ["DropStmt", "ddl", "DROP TABLE t"],
      ],
    );
  });

  it("slices statement text by character, not byte, around non-ASCII text", () => {
    const analysis = analyze('SELECT \'héllo 😀\'; SELECT "ñ" FROM "Tä"; SELECT 3');
    assert.deepEqual(
      analysis.statements.map((s) => s.text),
      ["SELECT 'héllo 😀'", 'SELECT "ñ" FROM "Tä"', "SELECT 3"],
    );
  });

  it("gives zero statements for an empty string, whitespace or comments only", () => {
    for (const sql of ["", "   \n\t", "-- nothing here", "/* nor */ /* here */", ";"]) {
      const analysis = analyze(sql);
      assert.deepEqual(analysis.statements, [], JSON.stringify(sql));
      assert.equal(analysis.class, "read");
    }
    assert.equal(analyze("").fingerprint, "");
  });

  it("orders classes by danger and keeps them unique", () => {
    const [statement] = analyze("WITH d AS (DELETE FROM t RETURNING *) SELECT pg_read_file('x'), * FROM d").statements;
    assert.deepEqual(statement?.classes, ["read", "write", "admin"]);
    assert.equal(statement?.class, "admin");
  });

  it("reports the parse node name as kind", () => {
    const kinds = analyze(
      "SELECT 1; INSERT INTO t VALUES (1); CREATE TABLE x (a int); EXPLAIN SELECT 1",
    ).statements.map((s) => s.kind);
    assert.deepEqual(kinds, ["SelectStmt", "InsertStmt", "CreateStmt", "ExplainStmt"]);
  });
});

describe("fingerprint and cache key", () => {
  it("fingerprints without constants", () => {
    assert.equal(
      analyze("SELECT * FROM t WHERE id = 1").fingerprint,
      analyze("select *  from t where id = 42").fingerprint,
    );
    assert.notEqual(analyze("SELECT * FROM t").fingerprint, analyze("SELECT * FROM u").fingerprint);
  });

  it("gives a single statement string the statement's fingerprint, a longer one its own", () => {
    const one = analyze("SELECT * FROM t");
    assert.equal(one.fingerprint, one.statements[0]?.fingerprint);
    const two = analyze("SELECT * FROM t; SELECT 1");
    assert.notEqual(two.fingerprint, two.statements[0]?.fingerprint);
    assert.match(two.fingerprint, /^[0-9a-f]{16}$/);
  });

  it("keeps apart statements that share a fingerprint but not a class", () => {
    const role = analyze("SELECT set_config('role', 'admin', false)");
    const name = analyze("SELECT set_config('application_name', 'x', false)");
    assert.equal(role.fingerprint, name.fingerprint);
    assert.notEqual(role.cacheKey, name.cacheKey);
    assert.equal(role.class, "privilege");
    assert.equal(name.class, "session");

    const prepared = new Map([
      ["a", "SELECT 1"],
      ["b", "DELETE FROM t"],
    ]);
    const a = analyze("EXECUTE a", { prepared });
    const b = analyze("EXECUTE b", { prepared });
    assert.equal(a.fingerprint, b.fingerprint);
    assert.notEqual(a.cacheKey, b.cacheKey);

    const readOnly = analyze("BEGIN READ ONLY");
    const readWrite = analyze("BEGIN READ WRITE");
    assert.notEqual(readOnly.cacheKey, readWrite.cacheKey);
  });

  it("gives equal strings up to constants the same cache key", () => {
    assert.equal(analyze("SELECT c FROM t WHERE id = 1").cacheKey, analyze("SELECT c FROM t WHERE id = 2").cacheKey);
  });
});

describe("errors", () => {
  function parseFailure(sql: string): SqlAnalysisError {
    try {
      analyze(sql);
    } catch (error) {
      assert.ok(error instanceof SqlAnalysisError, String(error));
      return error;
    }
    assert.fail(`analysed without error: ${sql}`);
  }

  it("refuses what PostgreSQL cannot parse with 42601, the parser's message and position", () => {
    const cases: [string, string, number | undefined][] = [
      ["SELEC 1", 'syntax error at or near "SELEC"', 1],
      ["SELECT * FROM t WHERE", "syntax error at end of input", 22],
      ["SELECT 'ééé' 1", 'syntax error at or near "1"', 14],
      ["SELECT 1; SELEC 2", 'syntax error at or near "SELEC"', 11],
      ["SELECT 'abc", 'unterminated quoted string at or near "\'abc"', 8],
      ["SELECT $$abc", 'unterminated dollar-quoted string at or near "$$abc"', 8],
      ["SELECT 1 FROM", "syntax error at end of input", 14],
    ];
    for (const [sql, message, position] of cases) {
      const error = parseFailure(sql);
      assert.equal(error.code, "42601", sql);
      assert.equal(error.message, message, sql);
      assert.equal(error.position, position, sql);
    }
  });

  it("refuses a NUL character with 22021", () => {
    const error = parseFailure("SELECT 1\u0000; DROP TABLE t");
    assert.equal(error.code, "22021");
    assert.equal(error.position, 9);
  });

  it("refuses statements nested too deeply to analyse with 54001", () => {
    const error = parseFailure(`SELECT ${Array(20_000).fill("1").join("+")}`);
    assert.equal(error.code, "54001");
    const subqueries = parseFailure(`SELECT ${"(SELECT ".repeat(3_000)}1${")".repeat(3_000)}`);
    assert.ok(subqueries.code === "54001" || subqueries.code === "42601", subqueries.code);
  });
});

describe("functions", () => {
  it("asks the catalog with the lower-cased name as called", () => {
    const asked: string[] = [];
    analyze('SELECT app.Fn(1), "MyFn"(), other()', {
      catalog: {
        volatility: (name) => {
          asked.push(name);
          return "i";
        },
      },
    });
    assert.deepEqual(asked.sort(), ["app.fn", "myfn", "other"]);
  });

  it("judges dangerous built-ins whatever the catalog says", () => {
    const catalog = catalogOf({ pg_read_file: "i", nextval: "s", set_config: "i", pg_advisory_lock: "i" });
    assert.equal(analyze("SELECT pg_read_file('x')", { catalog }).class, "admin");
    assert.equal(analyze("SELECT nextval('s')", { catalog }).class, "write");
    assert.equal(analyze("SELECT set_config('role', 'x', false)", { catalog }).class, "privilege");
    assert.equal(analyze("SELECT pg_advisory_lock(1)", { catalog }).class, "session");
  });

  it("treats every unknown function as a write and lists it", () => {
    const [statement] = analyze("SELECT a(), b.c(), lower('x'), a()").statements;
    assert.equal(statement?.class, "write");
    assert.deepEqual(statement?.flags.unknownFunctions, ["a", "b.c"]);
    assert.deepEqual(statement?.functions, ["a", "b.c", "lower"]);
  });

  it("finds functions in every clause", () => {
    const sql =
      "SELECT f1() FROM t JOIN f2() AS x ON true WHERE f3() GROUP BY f4() HAVING f5() ORDER BY f6() LIMIT f7()";
    const [statement] = analyze(sql).statements;
    assert.deepEqual(statement?.flags.unknownFunctions, ["f1", "f2", "f3", "f4", "f5", "f6", "f7"]);
  });

  it("finds functions in EXECUTE parameters and CALL arguments", () => {
    assert.equal(
      analyze("EXECUTE q(pg_terminate_backend(1))", { prepared: new Map([["q", "SELECT $1"]]) }).class,
      "admin",
    );
    assert.equal(analyze("CALL p(pg_read_file('x'))").class, "admin");
  });

  it("keeps the built-in lists disjoint", () => {
    const lists = [
      READ_ONLY_BUILTINS,
      HARMLESS_VOLATILE_BUILTINS,
      WRITE_BUILTINS,
      SESSION_BUILTINS,
      ADMIN_BUILTINS,
      DYNAMIC_BUILTINS,
    ];
    const seen = new Map<string, number>();
    for (const list of lists) for (const name of list) seen.set(name, (seen.get(name) ?? 0) + 1);
    assert.deepEqual(
      [...seen].filter(([, count]) => count > 1).map(([name]) => name),
      [],
    );
    assert.ok(READ_ONLY_BUILTINS.has("lower") && READ_ONLY_BUILTINS.has("count") && READ_ONLY_BUILTINS.has("now"));
  });
});

describe("prepared statements", () => {
  it("resolves EXECUTE through a prepared body or a whole PREPARE text", () => {
    const body = analyze("EXECUTE x", { prepared: new Map([["x", "DELETE FROM t"]]) });
    const whole = analyze("EXECUTE x", { prepared: new Map([["x", "PREPARE x AS DELETE FROM t"]]) });
    for (const analysis of [body, whole]) {
      const [statement] = analysis.statements;
      assert.equal(statement?.class, "write");
      assert.deepEqual(statement?.writes, ["t"]);
      assert.deepEqual(statement?.flags, { execute: "x" });
      assert.equal(statement?.kind, "ExecuteStmt");
    }
  });

  it("lets a PREPARE later in the string replace one from the session", () => {
    const analysis = analyze("PREPARE x AS SELECT 1; EXECUTE x", { prepared: new Map([["x", "DELETE FROM t"]]) });
    assert.equal(analysis.class, "read");
  });

  it("fails closed on prepared text that does not parse or itself says EXECUTE", () => {
    for (const text of ["SELEC 1", "EXECUTE y"]) {
      const analysis = analyze("EXECUTE x", {
        prepared: new Map([
          ["x", text],
          ["y", "SELECT 1"],
        ]),
      });
      assert.equal(analysis.class, "procedural", text);
      assert.equal(analysis.statements[0]?.flags.dynamicSql, true);
    }
  });

  it("forgets a prepared statement on DEALLOCATE, and all of them on DEALLOCATE ALL", () => {
    const prepared = new Map([["x", "SELECT 1"]]);
    assert.equal(analyze("EXECUTE x", { prepared }).class, "read");
    assert.equal(analyze("DEALLOCATE x; EXECUTE x", { prepared }).class, "procedural");
    assert.equal(analyze("DEALLOCATE ALL; EXECUTE x", { prepared }).class, "procedural");
  });

  it("classifies PREPARE by what its statement will do", () => {
    const [statement] = analyze("PREPARE x (int) AS SELECT * FROM t WHERE id = $1 FOR UPDATE").statements;
    assert.equal(statement?.class, "write");
    assert.deepEqual(statement?.flags, { prepare: "x" });
  });
});

describe("what the target's catalog resolves (TargetFacts)", () => {
  // A hand-made catalog answer: what a target with these objects would report (see enforce/catalog.ts).
  const facts: Readonly<Record<"relation" | "operator" | "type", Readonly<Record<string, readonly StatementClass[]>>>> =
    {
      relation: {
        t: [],
        "public.t": [],
        report: ["write"],
        "public.report": ["write"],
        remote_report: ["admin", "write"],
        secrets: ["write"],
      },
      operator: { "===": ["write"], "public.===": ["write"], "<<<": ["write"], "||": ["write"], "@@": [] },
      type: {
        "pg_catalog.int4": [],
        "pg_catalog.date": ["write"],
        date: ["write"],
        text: [],
        ticket: ["write"],
        checked_text: ["write"],
        mood: [],
      },
    };
  const asked: string[] = [];
  const catalog: TargetFacts = {
    volatility: (name) => ({ tally: "v", describe: "v", honest: "s" })[name] as "v" | "s" | undefined,
    relation: (name) => {
      asked.push(`relation ${name}`);
      return facts.relation[name];
    },
    operator: (name) => {
      asked.push(`operator ${name}`);
      return facts.operator[name];
    },
    type: (name) => {
      asked.push(`type ${name}`);
      return facts.type[name];
    },
  };
  const judged = (sql: string) => {
    const [statement] = analyze(sql, { catalog, fingerprints: false }).statements;
    return {
      classes: statement?.classes,
      hidden: statement?.flags.hiddenEffects,
      unresolved: statement?.flags.unresolved,
    };
  };

  it("judges a plain read of a view over a writing function a write, and says why", () => {
    assert.deepEqual(judged("SELECT * FROM report"), {
      classes: ["read", "write"],
      hidden: ["relation report"],
      unresolved: undefined,
    });
    assert.deepEqual(judged("SELECT n FROM public.report").hidden, ["relation public.report"]);
    assert.deepEqual(judged("SELECT n FROM app.public.report").hidden, ["relation app.public.report"]);
    assert.deepEqual(judged("SELECT * FROM remote_report").classes, ["read", "write", "admin"]);
    assert.deepEqual(judged("SELECT count(*) FROM secrets").classes, ["read", "write"]);
  });

  it("finds the view in every shape of query: subqueries, LATERAL, CTEs, UNION, TABLE, COPY, EXECUTE", () => {
    for (const sql of [
      "SELECT (SELECT n FROM report)",
      "SELECT g FROM generate_series(1, 3) g, LATERAL (SELECT n FROM report) r",
      "WITH r AS MATERIALIZED (SELECT n FROM report) SELECT count(*) FROM r",
      "SELECT 1 UNION SELECT n FROM report",
      "TABLE report",
      "SELECT EXISTS (SELECT 1 FROM report)",
      "COPY (SELECT n FROM report) TO STDOUT",
      "DECLARE c CURSOR WITH HOLD FOR SELECT n FROM report",
      "EXPLAIN ANALYZE SELECT n FROM report",
    ]) {
      assert.ok(judged(sql).classes?.includes("write"), sql);
    }
    const prepared = new Map([["p", "SELECT n FROM report"]]);
    assert.equal(analyze("EXECUTE p", { catalog, prepared }).class, "write");
  });

  it("keeps what only plans or defines a read or DDL: EXPLAIN, CREATE VIEW, a CTE of the same name", () => {
    assert.deepEqual(judged("EXPLAIN SELECT n FROM report").classes, ["read"]);
    assert.deepEqual(judged("CREATE VIEW v AS SELECT n FROM report").classes, ["read", "ddl"]);
    assert.deepEqual(judged("WITH report AS (SELECT 1 AS n) SELECT n FROM report").classes, ["read"]);
    assert.deepEqual(judged("SELECT id FROM t").classes, ["read"]);
  });

  it("judges user-defined operators by what they run, in every syntax", () => {
    for (const sql of [
      "SELECT id FROM t WHERE c === 'v'",
      "SELECT a OPERATOR(public.===) b FROM t",
      "SELECT 'v' === ANY (ARRAY['a', 'v'])",
      "SELECT id FROM t ORDER BY id USING <<<",
      "SELECT c || id FROM t",
    ]) {
      assert.ok(judged(sql).classes?.includes("write"), sql);
    }
    assert.deepEqual(judged("SELECT a @@ b FROM t").classes, ["read"]);
    assert.deepEqual(judged("SELECT 1 + 2 WHERE 1 BETWEEN 0 AND 2").classes, ["read"]);
  });

  it("counts an operator nobody knows as a write and asks for it (fail closed)", () => {
    assert.deepEqual(judged("SELECT 1 ### 2"), {
      classes: ["read", "write"],
      hidden: undefined,
      unresolved: ["operator ###"],
    });
    assert.deepEqual(judged("SELECT 1 OPERATOR(other.+) 2").unresolved, ["operator other.+"]);
    assert.deepEqual(judged("SELECT 1 OPERATOR(pg_catalog.+) 2").classes, ["read"]);
  });

  it("judges casts and domain checks by the type coerced to: ::, CAST, type 'literal', arrays, function style", () => {
    assert.deepEqual(judged("SELECT id::date FROM t").hidden, ["type date"]);
    assert.deepEqual(judged("SELECT CAST(c AS ticket) FROM t").hidden, ["type ticket"]);
    assert.deepEqual(judged("SELECT date '2020-01-01'").hidden, ["type date"]);
    assert.deepEqual(judged("SELECT ARRAY['a']::checked_text[]").hidden, ["type checked_text"]);
    assert.deepEqual(judged("SELECT date(id) FROM t").hidden, ["type date"]);
    assert.deepEqual(judged("SELECT CAST(1 AS int), 'x'::text").classes, ["read"]);
    assert.deepEqual(judged("SELECT 'x'::no_such_type").unresolved, ["type no_such_type"]);
  });

  it("judges aggregates and functions whose hidden code writes as the catalog's volatility says", () => {
    assert.ok(judged("SELECT tally(id) FROM t").classes?.includes("write"));
    assert.ok(judged("SELECT describe(id) FROM t").classes?.includes("write"));
    assert.deepEqual(judged("SELECT honest(id) FROM t").classes, ["read"]);
  });

  it("counts every call and operator a write when an implicit user cast into a built-in type writes", () => {
    const casting: TargetFacts = { ...catalog, implicitCasts: ["write"] };
    const of = (sql: string) => analyze(sql, { catalog: casting, fingerprints: false }).statements[0]?.flags;
    assert.deepEqual(of("SELECT upper(c) FROM t")?.hiddenEffects, ["implicit casts"]);
    assert.deepEqual(of("SELECT id FROM t WHERE id = 1")?.hiddenEffects, ["implicit casts"]);
    assert.equal(of("SELECT id, c FROM t")?.hiddenEffects, undefined);
    assert.equal(of("SELECT now()")?.hiddenEffects, undefined);
  });

  it("counts a relation the catalog does not know as a write and lists it for a reload", () => {
    const analysis = analyze("SELECT * FROM fresh_view JOIN t USING (id)", { catalog });
    assert.equal(analysis.class, "write");
    assert.deepEqual(analysis.statements[0]?.flags.unresolved, ["relation fresh_view"]);
  });

  it("asks nothing about names that are not relations, operators or types, and nothing without the methods", () => {
    asked.length = 0;
    analyze("WITH w AS (SELECT 1) SELECT * FROM w", { catalog });
    assert.deepEqual(asked, []);
    const functionsOnly = analyze("SELECT * FROM report WHERE c === 'x' AND c::ticket IS NULL", {
      catalog: catalogOf({}),
    });
    assert.equal(functionsOnly.class, "read");
  });

  it("changes the cache key when the catalog's answer changes the classes", () => {
    const harmless: TargetFacts = { ...catalog, relation: (name) => (name === "report" ? [] : facts.relation[name]) };
    const before = analyze("SELECT * FROM report", { catalog: harmless, fingerprints: false });
    const after = analyze("SELECT * FROM report", { catalog, fingerprints: false });
    assert.notEqual(before.cacheKey, after.cacheKey);
  });
});
