// The acceptance corpus of issue 12: places where an administrator, working directly on the database, hid a write
// behind something an agent reads. Each case is data: the administrator's setup (run as the superuser, after
// BASE_SETUP) and the agent's statements, each a plain-looking read. Run directly against PostgreSQL as the gateway's
// own upstream role, every case changes STATE_QUERY's answer (the case is live); through the gateway, with reads
// allowed and everything else held for approval, every case must be refused and change nothing.
//
// Left out on purpose, because they are not hidden writes behind a read: REFRESH MATERIALIZED VIEW (DDL-class), column
// defaults and triggers (they fire on writes only), EXPLAIN without ANALYZE of an honest function (it plans, it does
// not run), advisory locks and NOTIFY (no change to the data).

/** The upstream role the gateway signs in as (and the direct runs use): not a superuser, not the tables' owner. */
export const AGENT_ROLE = "hiding_places_agent";

/** Where the test runs, for the few setups that must name it (loopback connections, the psql binary). */
export interface SetupContext {
  /** host, port and database of the target, as a libpq conninfo fragment: `host=... port=... dbname=...`. */
  readonly target: string;
  readonly host: string;
  readonly port: number;
  readonly database: string;
  /** The password of AGENT_ROLE (generated per run). */
  readonly agentPassword: string;
  /** Absolute path of psql, for a program run by the server. */
  readonly psql: string;
}

/** One statement as the agent sends it: a simple Query, or with `values` through Parse/Bind/Execute. */
export type AgentStep = string | { readonly sql: string; readonly values: readonly unknown[] };

export type HidingKind =
  | "view"
  | "rule"
  | "operator"
  | "opclass"
  | "cast"
  | "aggregate"
  | "domain"
  | "rls"
  | "shadowed"
  | "lying-volatility"
  | "settings"
  | "cursor"
  | "srf"
  | "query-shape"
  | "protocol"
  | "side-channel"
  | "nested";

export interface HidingPlace {
  readonly name: string;
  readonly kind: HidingKind;
  /** One line: how the write hides. */
  readonly mechanism: string;
  /** The administrator's objects, run as the superuser after BASE_SETUP. */
  readonly setup: string | ((ctx: SetupContext) => string);
  /** Run as the superuser after the standard grants (GRANTS_SQL), to take some back. */
  readonly afterGrants?: string;
  /** What the agent sends, in order, on one connection. */
  readonly steps: readonly AgentStep[];
  /** The steps hold a multi-statement string: the extended protocol cannot carry them. */
  readonly simpleOnly?: boolean;
  /** Also run through psql. */
  readonly psql?: boolean;
}

/**
 * What every case starts from: ten victims, an empty notebook, an unused sequence, and two writing functions most
 * cases hide somewhere. Every hidden write in the corpus lands in one of these, so STATE_QUERY sees it.
 */
export const BASE_SETUP = `
  CREATE TABLE public.victims (id int PRIMARY KEY, name text NOT NULL DEFAULT 'v');
  INSERT INTO public.victims (id) SELECT generate_series(1, 10);
  CREATE TABLE public.audit_victim (note text);
  CREATE SEQUENCE public.victim_seq;
  -- eat(): deletes every victim.
  CREATE FUNCTION public.eat() RETURNS int LANGUAGE plpgsql AS $$
    BEGIN DELETE FROM public.victims; RETURN 1; END $$;
  -- scribble(what): writes a note, answers true.
  CREATE FUNCTION public.scribble(what text) RETURNS boolean LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO public.audit_victim VALUES (what); RETURN true; END $$;
`;

/**
 * Everything a hidden write of the corpus can change, read by the superuser with search_path = pg_catalog (so no
 * shadowing object of a case can run while it is measured). Compare the answer before and after.
 */
export const STATE_QUERY = `
  SELECT (SELECT count(*) FROM public.victims)::int AS victims,
         (SELECT coalesce(sum(id), 0) FROM public.victims)::int AS victim_ids,
         (SELECT count(*) FROM public.audit_victim)::int AS notes,
         (SELECT format('%s/%s', last_value, is_called) FROM public.victim_seq) AS sequence,
         (SELECT count(*) FROM pg_catalog.pg_largeobject_metadata)::int AS large_objects,
         (SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema')::int AS relations,
         (SELECT count(*) FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname !~ '^pg_' AND n.nspname <> 'information_schema')::int AS functions
`;

/** Drops everything a previous case made (run as the superuser, with search_path = public). */
export const RESET_SQL = `
  DROP EXTENSION IF EXISTS dblink CASCADE;
  DROP EXTENSION IF EXISTS postgres_fdw CASCADE;
  DO $$ DECLARE s name; BEGIN
    FOR s IN SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema' LOOP
      EXECUTE format('DROP SCHEMA %I CASCADE', s);
    END LOOP;
    EXECUTE format('ALTER DATABASE %I RESET ALL', current_database());
    EXECUTE format('ALTER ROLE ${AGENT_ROLE} IN DATABASE %I RESET ALL', current_database());
    PERFORM lo_unlink(oid) FROM pg_largeobject_metadata;
    IF EXISTS (SELECT FROM pg_cast WHERE oid >= 16384) THEN RAISE EXCEPTION 'a cast survived the reset'; END IF;
  END $$;
  ALTER ROLE ${AGENT_ROLE} RESET ALL;
  CREATE SCHEMA public;
`;

/** What the gateway's credential may do, as a read-write application role would: use and change every table. */
export const GRANTS_SQL = `
  DO $$ DECLARE s name; BEGIN
    FOR s IN SELECT nspname FROM pg_namespace WHERE nspname !~ '^pg_' AND nspname <> 'information_schema' LOOP
      EXECUTE format('GRANT USAGE ON SCHEMA %I TO ${AGENT_ROLE}', s);
      EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %I TO ${AGENT_ROLE}', s);
      EXECUTE format('GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA %I TO ${AGENT_ROLE}', s);
    END LOOP;
  END $$;
`;

/** The view most query-shape cases read: its one column deletes every victim. */
const REPORT = "CREATE VIEW public.report AS SELECT public.eat() AS n;";

const TALLY = `
  CREATE FUNCTION public.tally_step(s int, v int) RETURNS int LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO public.audit_victim VALUES ('tally ' || v); RETURN s + 1; END $$;
  CREATE AGGREGATE public.tally(int) (SFUNC = public.tally_step, STYPE = int, INITCOND = '0');
`;

const CENSUS = `
  CREATE FUNCTION public.census_final(s int) RETURNS int LANGUAGE plpgsql AS $$
    BEGIN DELETE FROM public.victims; RETURN s; END $$;
  CREATE AGGREGATE public.census(int) (SFUNC = int4pl, STYPE = int, INITCOND = '0', FINALFUNC = public.census_final);
`;

const SAME_TEXT = `
  CREATE FUNCTION public.same_text(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO public.audit_victim VALUES ('compared ' || a); RETURN a = b; END $$;
  CREATE OPERATOR public.=== (LEFTARG = text, RIGHTARG = text, FUNCTION = public.same_text);
`;

const TICKET = `
  CREATE TYPE public.ticket AS (code text);
  CREATE FUNCTION public.ticket_of(t text) RETURNS public.ticket LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO public.audit_victim VALUES ('ticket ' || t); RETURN ROW(t)::public.ticket; END $$;
  CREATE CAST (text AS public.ticket) WITH FUNCTION public.ticket_of(text);
`;

const CHECKED_TEXT = "CREATE DOMAIN public.checked_text AS text CHECK (public.scribble(VALUE));";

const EVIL_UPPER = `
  CREATE SCHEMA evil;
  CREATE FUNCTION evil.upper(t text) RETURNS text LANGUAGE plpgsql AS $$
    BEGIN DELETE FROM public.victims; RETURN pg_catalog.upper(t); END $$;
`;

/** A STABLE function that is not: it calls a volatile one, which may write (PostgreSQL only stops direct writes). */
const VICTIM_COUNT = `
  CREATE FUNCTION public.victim_count() RETURNS bigint LANGUAGE plpgsql STABLE AS $$
    BEGIN PERFORM public.eat(); RETURN 0; END $$;
`;

const TAX_RATE = `
  CREATE FUNCTION public.tax_rate(i int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
    BEGIN PERFORM public.scribble('tax ' || i); RETURN i; END $$;
`;

export const HIDING_PLACES: readonly HidingPlace[] = [
  // --- views ---------------------------------------------------------------------------------------------------
  {
    name: "view calling a volatile plpgsql function",
    kind: "view",
    mechanism: "a view column is eat(), which deletes every victim",
    setup: REPORT,
    steps: ["SELECT * FROM report"],
    psql: true,
  },
  {
    name: "view on view on view",
    kind: "view",
    mechanism: "three views deep, the innermost column deletes",
    setup: `${REPORT}
      CREATE VIEW public.report2 AS SELECT n FROM public.report;
      CREATE VIEW public.report3 AS SELECT n + 0 AS n FROM public.report2;`,
    steps: ["SELECT n FROM report3"],
  },
  {
    name: "view with a CASE that writes on some rows only",
    kind: "view",
    mechanism: "CASE WHEN id = 7 THEN scribble(...) ELSE true: only row 7 writes",
    setup: `CREATE VIEW public.victim_flags AS
      SELECT id, CASE WHEN id = 7 THEN public.scribble('row 7') ELSE true END AS ok FROM public.victims;`,
    steps: ["SELECT id, ok FROM victim_flags WHERE id > 5"],
  },
  {
    name: "security_barrier view whose filter writes",
    kind: "view",
    mechanism: "WITH (security_barrier): the view's own WHERE runs first, per row, and writes",
    setup: `CREATE VIEW public.guarded WITH (security_barrier) AS
      SELECT id FROM public.victims WHERE public.scribble('barrier ' || id);`,
    steps: ["SELECT id FROM guarded"],
  },
  {
    name: "security_invoker view",
    kind: "view",
    mechanism: "WITH (security_invoker = true): the write runs with the reader's own rights, which include DELETE",
    setup: "CREATE VIEW public.invoked WITH (security_invoker = true) AS SELECT public.eat() AS n;",
    steps: ["SELECT n FROM invoked"],
  },
  {
    name: "view whose WHERE writes, narrowed by the agent",
    kind: "view",
    mechanism: "the view filters with scribble(); the agent adds id = 3 and still triggers it",
    setup: "CREATE VIEW public.recent AS SELECT id, name FROM public.victims WHERE public.scribble('filter ' || id);",
    steps: ["SELECT name FROM recent WHERE id = 3"],
  },
  {
    name: "view with UNION ALL of a writing branch",
    kind: "view",
    mechanism: "the second branch of a UNION ALL is eat()",
    setup: "CREATE VIEW public.everything AS SELECT id FROM public.victims UNION ALL SELECT public.eat();",
    steps: ["SELECT count(*) FROM everything"],
  },
  {
    name: "table turned into a view by an ON SELECT rule",
    kind: "rule",
    mechanism: 'CREATE TABLE ledger, then CREATE RULE "_RETURN" AS ON SELECT ... DO INSTEAD SELECT eat()',
    setup: `CREATE TABLE public.ledger (n int);
      CREATE RULE "_RETURN" AS ON SELECT TO public.ledger DO INSTEAD SELECT public.eat() AS n;`,
    steps: ["SELECT n FROM ledger"],
  },

  // --- operators -----------------------------------------------------------------------------------------------
  {
    name: "operator === in WHERE",
    kind: "operator",
    mechanism: "text === text is a plpgsql function that writes a note per comparison",
    setup: SAME_TEXT,
    steps: ["SELECT id FROM victims WHERE name === 'v'"],
    psql: true,
  },
  {
    name: "operator in a join condition",
    kind: "operator",
    mechanism: "int ## int deletes the victim it compares; used in JOIN ... ON",
    setup: `CREATE FUNCTION public.same_id(a int, b int) RETURNS boolean LANGUAGE plpgsql AS $$
        BEGIN DELETE FROM public.victims WHERE id = a; RETURN a = b; END $$;
      CREATE OPERATOR public.## (LEFTARG = int, RIGHTARG = int, FUNCTION = public.same_id);`,
    steps: ["SELECT a.id FROM generate_series(1, 3) a(id) JOIN generate_series(1, 3) b(id) ON a.id ## b.id"],
  },
  {
    name: "operator in = ANY (array)",
    kind: "operator",
    mechanism: "'v' === ANY (ARRAY[...]): a ScalarArrayOp calls the writing operator per element",
    setup: SAME_TEXT,
    steps: ["SELECT 'v' === ANY (ARRAY['a', 'v']) AS found"],
  },
  {
    name: "operator used by a view",
    kind: "operator",
    mechanism: "the view's WHERE uses ===; the agent sees only a view",
    setup: `${SAME_TEXT} CREATE VIEW public.matches AS SELECT id FROM public.victims WHERE name === 'v';`,
    steps: ["SELECT id FROM matches"],
  },
  {
    name: "ORDER BY ... USING an operator of a writing operator class",
    kind: "opclass",
    mechanism: "btree opclass rank_ops on int whose comparison support function deletes; ORDER BY id USING <<<",
    setup: `
      CREATE FUNCTION public.rank_cmp(a int, b int) RETURNS int LANGUAGE plpgsql AS $$
        BEGIN DELETE FROM public.victims WHERE id = a; RETURN btint4cmp(a, b); END $$;
      CREATE FUNCTION public.rank_lt(a int, b int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT a < b';
      CREATE FUNCTION public.rank_le(a int, b int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT a <= b';
      CREATE FUNCTION public.rank_eq(a int, b int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT a = b';
      CREATE FUNCTION public.rank_ge(a int, b int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT a >= b';
      CREATE FUNCTION public.rank_gt(a int, b int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT a > b';
      CREATE OPERATOR public.<<< (LEFTARG = int, RIGHTARG = int, FUNCTION = public.rank_lt);
      CREATE OPERATOR public.<<<= (LEFTARG = int, RIGHTARG = int, FUNCTION = public.rank_le);
      CREATE OPERATOR public.==== (LEFTARG = int, RIGHTARG = int, FUNCTION = public.rank_eq);
      CREATE OPERATOR public.>>>= (LEFTARG = int, RIGHTARG = int, FUNCTION = public.rank_ge);
      CREATE OPERATOR public.>>> (LEFTARG = int, RIGHTARG = int, FUNCTION = public.rank_gt);
      CREATE OPERATOR CLASS public.rank_ops FOR TYPE int USING btree AS
        OPERATOR 1 public.<<<, OPERATOR 2 public.<<<=, OPERATOR 3 public.====, OPERATOR 4 public.>>>=,
        OPERATOR 5 public.>>>, FUNCTION 1 public.rank_cmp(int, int);`,
    steps: ["SELECT id FROM generate_series(1, 5) AS g(id) ORDER BY id USING <<<"],
  },
  {
    name: "default operator class of an enum: plain ORDER BY",
    kind: "opclass",
    mechanism: "a DEFAULT btree opclass for enum mood beats enum_ops; its comparison function writes; ORDER BY m",
    setup: `
      CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');
      CREATE TABLE public.moods (m public.mood);
      INSERT INTO public.moods VALUES ('happy'), ('sad'), ('ok');
      CREATE FUNCTION public.mood_cmp(a public.mood, b public.mood) RETURNS int LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO public.audit_victim VALUES ('mood'); RETURN enum_cmp(a, b); END $$;
      CREATE FUNCTION public.mood_lt(a public.mood, b public.mood) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT enum_lt(a, b)';
      CREATE FUNCTION public.mood_le(a public.mood, b public.mood) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT enum_le(a, b)';
      CREATE FUNCTION public.mood_eq(a public.mood, b public.mood) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT enum_eq(a, b)';
      CREATE FUNCTION public.mood_ge(a public.mood, b public.mood) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT enum_ge(a, b)';
      CREATE FUNCTION public.mood_gt(a public.mood, b public.mood) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT enum_gt(a, b)';
      CREATE OPERATOR public.< (LEFTARG = public.mood, RIGHTARG = public.mood, FUNCTION = public.mood_lt);
      CREATE OPERATOR public.<= (LEFTARG = public.mood, RIGHTARG = public.mood, FUNCTION = public.mood_le);
      CREATE OPERATOR public.= (LEFTARG = public.mood, RIGHTARG = public.mood, FUNCTION = public.mood_eq);
      CREATE OPERATOR public.>= (LEFTARG = public.mood, RIGHTARG = public.mood, FUNCTION = public.mood_ge);
      CREATE OPERATOR public.> (LEFTARG = public.mood, RIGHTARG = public.mood, FUNCTION = public.mood_gt);
      CREATE OPERATOR CLASS public.mood_ops DEFAULT FOR TYPE public.mood USING btree AS
        OPERATOR 1 public.<, OPERATOR 2 public.<=, OPERATOR 3 public.=, OPERATOR 4 public.>=, OPERATOR 5 public.>,
        FUNCTION 1 public.mood_cmp(public.mood, public.mood);`,
    steps: ["SELECT m FROM moods ORDER BY m"],
  },
  {
    name: "built-in operator shadowed by exact argument types",
    kind: "shadowed",
    mechanism: "public.|| (text, int) beats pg_catalog's text || anynonarray: name || id writes",
    setup: `
      CREATE FUNCTION public.text_int_cat(a text, b int) RETURNS text LANGUAGE plpgsql AS $$
        BEGIN PERFORM public.scribble('cat ' || b::text); RETURN a || b::text; END $$;
      CREATE OPERATOR public.|| (LEFTARG = text, RIGHTARG = int, FUNCTION = public.text_int_cat);`,
    steps: ["SELECT name || id AS label FROM victims"],
  },

  // --- casts ---------------------------------------------------------------------------------------------------
  {
    name: "explicit cast through a writing function",
    kind: "cast",
    mechanism: "CREATE CAST (text AS ticket) WITH FUNCTION ticket_of: CAST(name AS ticket) writes",
    setup: TICKET,
    steps: ["SELECT CAST(name AS ticket) FROM victims WHERE id = 1"],
  },
  {
    name: "cast between two built-in types with ::",
    kind: "cast",
    mechanism: "CREATE CAST (integer AS date) WITH FUNCTION day_number: id::date deletes",
    setup: `
      CREATE FUNCTION public.day_number(i int) RETURNS date LANGUAGE plpgsql AS $$
        BEGIN DELETE FROM public.victims WHERE id = i; RETURN date '2000-01-01' + i; END $$;
      CREATE CAST (integer AS date) WITH FUNCTION public.day_number(integer);`,
    steps: ["SELECT id::date AS day FROM victims"],
    psql: true,
  },
  {
    name: "implicit cast into a function argument",
    kind: "cast",
    mechanism:
      "an AS IMPLICIT cast int -> ticket writes; describe(ticket) is an honest STABLE function called with an int",
    setup: `
      CREATE TYPE public.ticket AS (code text);
      CREATE FUNCTION public.ticket_of_int(i int) RETURNS public.ticket LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO public.audit_victim VALUES ('ticket ' || i); RETURN ROW(i::text)::public.ticket; END $$;
      CREATE CAST (int AS public.ticket) WITH FUNCTION public.ticket_of_int(int) AS IMPLICIT;
      CREATE FUNCTION public.describe(t public.ticket) RETURNS text LANGUAGE sql STABLE AS 'SELECT (t).code';`,
    steps: ["SELECT describe(id) FROM victims"],
  },
  {
    name: "cast used by a view",
    kind: "cast",
    mechanism: "the view's column is name::ticket",
    setup: `${TICKET} CREATE VIEW public.ticket_list AS SELECT name::public.ticket AS t FROM public.victims;`,
    steps: ["SELECT t FROM ticket_list"],
  },

  // --- aggregates ----------------------------------------------------------------------------------------------
  {
    name: "aggregate whose state function writes",
    kind: "aggregate",
    mechanism: "CREATE AGGREGATE tally(int) (SFUNC = tally_step): a note per row",
    setup: TALLY,
    steps: ["SELECT tally(id) FROM victims"],
  },
  {
    name: "aggregate whose final function writes",
    kind: "aggregate",
    mechanism: "census(int): SFUNC int4pl, FINALFUNC deletes every victim",
    setup: CENSUS,
    steps: ["SELECT census(id) FROM victims"],
  },
  {
    name: "aggregate used in a view",
    kind: "aggregate",
    mechanism: "a view over tally(id)",
    setup: `${TALLY} CREATE VIEW public.summary AS SELECT public.tally(id) AS n FROM public.victims;`,
    steps: ["SELECT n FROM summary"],
  },
  {
    name: "aggregate used as a window function",
    kind: "aggregate",
    mechanism: "tally(id) OVER (ORDER BY id)",
    setup: TALLY,
    steps: ["SELECT id, tally(id) OVER (ORDER BY id) FROM victims"],
  },
  {
    name: "moving-aggregate inverse function writes",
    kind: "aggregate",
    mechanism: "MINVFUNC runs as rows leave a sliding window frame (ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)",
    setup: `
      CREATE FUNCTION public.running_inv(s int, v int) RETURNS int LANGUAGE plpgsql STRICT AS $$
        BEGIN DELETE FROM public.victims WHERE id = v; RETURN s - v; END $$;
      CREATE AGGREGATE public.running(int) (SFUNC = int4pl, STYPE = int, INITCOND = '0',
        MSFUNC = int4pl, MINVFUNC = public.running_inv, MSTYPE = int, MINITCOND = '0');`,
    steps: ["SELECT id, running(id) OVER (ORDER BY id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM victims"],
  },
  {
    name: "ordered-set aggregate (WITHIN GROUP) whose final function writes",
    kind: "aggregate",
    mechanism: "pick() WITHIN GROUP (ORDER BY id): FINALFUNC deletes",
    setup: `
      CREATE FUNCTION public.pick_step(s int, v int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT coalesce(s, 0) + 1';
      CREATE FUNCTION public.pick_final(s int) RETURNS int LANGUAGE plpgsql AS $$
        BEGIN DELETE FROM public.victims; RETURN s; END $$;
      CREATE AGGREGATE public.pick(ORDER BY int) (SFUNC = public.pick_step, STYPE = int, FINALFUNC = public.pick_final);`,
    steps: ["SELECT pick() WITHIN GROUP (ORDER BY id) FROM victims"],
  },
  {
    name: "aggregate in HAVING",
    kind: "aggregate",
    mechanism: "GROUP BY name HAVING census(id) > 0",
    setup: CENSUS,
    steps: ["SELECT name FROM victims GROUP BY name HAVING census(id) > 0"],
  },

  // --- domains -------------------------------------------------------------------------------------------------
  {
    name: "domain CHECK on a literal cast",
    kind: "domain",
    mechanism: "DOMAIN checked_text CHECK (scribble(VALUE)): 'hello'::checked_text writes",
    setup: CHECKED_TEXT,
    steps: ["SELECT 'hello'::checked_text AS greeting"],
    psql: true,
  },
  {
    name: "domain CHECK on a function's result",
    kind: "domain",
    mechanism: "an honest STABLE SQL function RETURNS checked_text: its result is checked, and the check writes",
    setup: `${CHECKED_TEXT}
      CREATE FUNCTION public.label(i int) RETURNS public.checked_text LANGUAGE sql STABLE AS $$ SELECT 'v' || i $$;`,
    steps: ["SELECT label(id) FROM victims"],
  },
  {
    name: "domain CHECK in a view column",
    kind: "domain",
    mechanism: "a view casts name to checked_text",
    setup: `${CHECKED_TEXT} CREATE VIEW public.labels AS SELECT name::public.checked_text AS label FROM public.victims;`,
    steps: ["SELECT label FROM labels"],
  },
  {
    name: "domain CHECK through an array cast",
    kind: "domain",
    mechanism: "ARRAY[...]::checked_text[] checks each element",
    setup: CHECKED_TEXT,
    steps: ["SELECT ARRAY['a', 'b']::checked_text[] AS pair"],
  },
  {
    name: "domain over a composite type",
    kind: "domain",
    mechanism: "DOMAIN checked_pair AS pair CHECK (scribble((VALUE).a::text)); ROW(1, 2)::checked_pair",
    setup: `
      CREATE TYPE public.pair AS (a int, b int);
      CREATE DOMAIN public.checked_pair AS public.pair CHECK (public.scribble((VALUE).a::text));`,
    steps: ["SELECT ROW(1, 2)::checked_pair AS p"],
  },
  {
    name: "domain as a field of a composite type",
    kind: "domain",
    mechanism: "TYPE envelope AS (body checked_text): ROW('x')::envelope checks the field",
    setup: `${CHECKED_TEXT} CREATE TYPE public.envelope AS (body public.checked_text);`,
    steps: ["SELECT ROW('x')::envelope AS e"],
  },

  // --- row-level security --------------------------------------------------------------------------------------
  {
    name: "RLS policy whose USING expression writes",
    kind: "rls",
    mechanism: "table owned by the administrator, RLS on; the agent's role is subject to USING (scribble(...))",
    setup: `
      CREATE TABLE public.secrets (id int, body text);
      INSERT INTO public.secrets SELECT g, 's' || g FROM generate_series(1, 5) g;
      ALTER TABLE public.secrets ENABLE ROW LEVEL SECURITY;
      CREATE POLICY peek ON public.secrets FOR SELECT USING (public.scribble('rls ' || id));`,
    steps: ["SELECT count(*) FROM secrets"],
    psql: true,
  },
  {
    name: "FORCE ROW LEVEL SECURITY on a table the agent's role owns",
    kind: "rls",
    mechanism: "the upstream role owns the table; FORCE makes its policy (eat() = 1) apply to the owner too",
    setup: `
      CREATE TABLE public.own_rows (id int);
      INSERT INTO public.own_rows SELECT generate_series(1, 3);
      ALTER TABLE public.own_rows OWNER TO ${AGENT_ROLE};
      ALTER TABLE public.own_rows ENABLE ROW LEVEL SECURITY;
      ALTER TABLE public.own_rows FORCE ROW LEVEL SECURITY;
      CREATE POLICY mine ON public.own_rows USING (public.eat() = 1);`,
    steps: ["SELECT id FROM own_rows"],
  },
  {
    name: "RLS policy with a subquery over a writing view",
    kind: "rls",
    mechanism: "USING (id <= (SELECT n FROM report)): the policy reads a view whose column deletes",
    setup: `${REPORT}
      CREATE TABLE public.ranked (id int);
      INSERT INTO public.ranked SELECT generate_series(1, 3);
      ALTER TABLE public.ranked ENABLE ROW LEVEL SECURITY;
      CREATE POLICY top ON public.ranked FOR SELECT USING (id <= (SELECT n FROM public.report));`,
    steps: ["SELECT id FROM ranked"],
  },

  // --- shadowed names ------------------------------------------------------------------------------------------
  {
    name: "lower(int) next to the built-in lower(text)",
    kind: "shadowed",
    mechanism: "public.lower(int) is the only lower that takes an int: lower(id) deletes",
    setup: `CREATE FUNCTION public.lower(n int) RETURNS int LANGUAGE plpgsql AS $$
      BEGIN DELETE FROM public.victims WHERE id = n; RETURN n; END $$;`,
    steps: ["SELECT lower(id) FROM victims"],
  },
  {
    name: "sqrt(bigint) shadowed by a function that also claims to be STABLE",
    kind: "shadowed",
    mechanism: "public.sqrt(bigint) STABLE is a better match for sqrt(count(*)) than pg_catalog's; it PERFORMs eat()",
    setup: `CREATE FUNCTION public.sqrt(n bigint) RETURNS bigint LANGUAGE plpgsql STABLE AS $$
      BEGIN PERFORM public.eat(); RETURN n; END $$;`,
    steps: ["SELECT sqrt(count(*)) FROM victims"],
  },
  {
    name: "round(int) beats the built-in round(numeric) by exact type",
    kind: "shadowed",
    mechanism: "an exact argument-type match in public wins over pg_catalog's round(numeric) even behind pg_catalog",
    setup: `CREATE FUNCTION public.round(n int) RETURNS int LANGUAGE plpgsql AS $$
      BEGIN PERFORM public.scribble('round ' || n); RETURN n; END $$;`,
    steps: ["SELECT round(id) FROM victims"],
  },
  {
    name: "upper() shadowed by ALTER ROLE ... IN DATABASE SET search_path",
    kind: "shadowed",
    mechanism: "the agent's upstream role gets search_path = evil, pg_catalog, public; evil.upper(text) deletes",
    setup: `${EVIL_UPPER}
      DO $$ BEGIN
        EXECUTE format('ALTER ROLE ${AGENT_ROLE} IN DATABASE %I SET search_path = evil, pg_catalog, public',
          current_database());
      END $$;`,
    steps: ["SELECT upper(name) FROM victims"],
    psql: true,
  },
  {
    name: "now() shadowed by ALTER DATABASE SET search_path",
    kind: "shadowed",
    mechanism: "the database's search_path puts evil before pg_catalog; evil.now() writes",
    setup: `
      CREATE SCHEMA evil;
      CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
        BEGIN PERFORM public.scribble('now'); RETURN pg_catalog.now(); END $$;
      DO $$ BEGIN
        EXECUTE format('ALTER DATABASE %I SET search_path = evil, pg_catalog, public', current_database());
      END $$;`,
    steps: ["SELECT now() AS t"],
  },
  {
    name: "length() shadowed by the agent's own SET search_path",
    kind: "shadowed",
    mechanism: "SET search_path (a session statement) then length(name): evil.length(text) deletes",
    setup: `
      CREATE SCHEMA evil;
      CREATE FUNCTION evil.length(t text) RETURNS int LANGUAGE plpgsql AS $$
        BEGIN DELETE FROM public.victims; RETURN pg_catalog.length(t); END $$;`,
    steps: ["SET search_path = evil, pg_catalog, public", "SELECT length(name) FROM victims"],
  },
  {
    name: "honest-looking STABLE function with SET search_path",
    kind: "shadowed",
    mechanism: "pretty(text) is STABLE and calls initcap(), which its own SET search_path resolves to evil.initcap",
    setup: `
      CREATE SCHEMA evil;
      CREATE FUNCTION evil.initcap(t text) RETURNS text LANGUAGE plpgsql AS $$
        BEGIN DELETE FROM public.victims; RETURN pg_catalog.initcap(t); END $$;
      CREATE FUNCTION public.pretty(t text) RETURNS text LANGUAGE plpgsql STABLE
        SET search_path = evil, pg_catalog AS $$ BEGIN RETURN initcap(t); END $$;`,
    steps: ["SELECT pretty(name) FROM victims"],
  },

  {
    name: "names the gateway's own catalog queries use, shadowed by exact types",
    kind: "shadowed",
    mechanism: "public.lower(name) and public.|| (text, oid) write; any catalog query that calls them writes too",
    setup: `
      CREATE FUNCTION public.lower(n name) RETURNS text LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO public.audit_victim VALUES ('lower ' || n::text); RETURN pg_catalog.lower(n::text); END $$;
      CREATE FUNCTION public.text_oid_cat(a text, b oid) RETURNS text LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO public.audit_victim VALUES ('cat ' || b::text); RETURN a || b::text; END $$;
      CREATE OPERATOR public.|| (LEFTARG = text, RIGHTARG = oid, FUNCTION = public.text_oid_cat);`,
    steps: ["SELECT lower(relname) FROM pg_class WHERE relname = 'victims'"],
  },

  // --- functions that lie about their volatility ---------------------------------------------------------------
  {
    name: "STABLE function that writes through a volatile one",
    kind: "lying-volatility",
    mechanism: "the catalog says STABLE (a read); its body PERFORMs eat()",
    setup: VICTIM_COUNT,
    steps: ["SELECT victim_count()"],
    psql: true,
  },
  {
    name: "IMMUTABLE function that writes, per row",
    kind: "lying-volatility",
    mechanism: "tax_rate(int) IMMUTABLE PERFORMs scribble(); called with a column",
    setup: TAX_RATE,
    steps: ["SELECT tax_rate(id) FROM victims"],
  },
  {
    name: "EXPLAIN runs an IMMUTABLE liar while planning",
    kind: "lying-volatility",
    mechanism: "EXPLAIN (no ANALYZE) of tax_rate(1): the planner folds the constant call, running it",
    setup: TAX_RATE,
    steps: ["EXPLAIN SELECT tax_rate(1)"],
  },
  {
    name: "EXPLAIN runs a STABLE liar to estimate selectivity",
    kind: "lying-volatility",
    mechanism: "EXPLAIN of id < victim_count(): the planner evaluates stable functions for its estimates",
    setup: VICTIM_COUNT,
    steps: ["EXPLAIN SELECT * FROM victims WHERE id < victim_count()"],
  },
  {
    name: "STABLE SQL function calling nextval",
    kind: "lying-volatility",
    mechanism: "ticket_number() STABLE is SELECT nextval(...): a sequence moves",
    setup: `CREATE FUNCTION public.ticket_number() RETURNS bigint LANGUAGE sql STABLE AS
      $$ SELECT nextval('public.victim_seq') $$;`,
    steps: ["SELECT ticket_number()"],
  },
  {
    name: "nextval hidden in a view",
    kind: "view",
    mechanism: "a view column is nextval('victim_seq')",
    setup: "CREATE VIEW public.next_ticket AS SELECT nextval('public.victim_seq') AS n;",
    steps: ["SELECT n FROM next_ticket"],
  },
  {
    name: "SQL-language function with DELETE ... RETURNING, behind a view",
    kind: "srf",
    mechanism: "LANGUAGE sql RETURNS SETOF int AS DELETE ... RETURNING id; the view selects from it",
    setup: `
      CREATE FUNCTION public.trim_victims() RETURNS SETOF int LANGUAGE sql AS
        $$ DELETE FROM public.victims WHERE id > 5 RETURNING id $$;
      CREATE VIEW public.trimmed AS SELECT id FROM public.trim_victims() AS t(id);`,
    steps: ["SELECT id FROM trimmed"],
  },

  // --- settings the function or the agent changes --------------------------------------------------------------
  {
    name: "function declared SET default_transaction_read_only = off",
    kind: "settings",
    mechanism: "the function's own SET clause turns the session default off while it runs; the view hides it",
    setup: `
      CREATE FUNCTION public.loose() RETURNS int LANGUAGE plpgsql SET default_transaction_read_only = off AS $$
        BEGIN DELETE FROM public.victims; RETURN 1; END $$;
      CREATE VIEW public.loose_view AS SELECT public.loose() AS n;`,
    steps: ["SELECT n FROM loose_view"],
  },
  {
    name: "function declared SET transaction_read_only = off",
    kind: "settings",
    mechanism: "the function's SET clause asks for a read-write transaction while it runs",
    setup: `
      CREATE FUNCTION public.unlocked() RETURNS int LANGUAGE plpgsql SET transaction_read_only = off AS $$
        BEGIN DELETE FROM public.victims; RETURN 1; END $$;
      CREATE VIEW public.unlocked_view AS SELECT public.unlocked() AS n;`,
    steps: ["SELECT n FROM unlocked_view"],
  },
  {
    name: "function declared SET transaction_read_only = off, read inside a block",
    kind: "settings",
    mechanism: "as above, in BEGIN ... COMMIT: the read runs where the function's switch to read-write must fail",
    setup: `
      CREATE FUNCTION public.unlocked() RETURNS int LANGUAGE plpgsql SET transaction_read_only = off AS $$
        BEGIN DELETE FROM public.victims; RETURN 1; END $$;
      CREATE VIEW public.unlocked_view AS SELECT public.unlocked() AS n;`,
    steps: ["BEGIN", "SELECT n FROM unlocked_view", "COMMIT"],
  },
  {
    name: "a view turns the session default read-write, the next read writes",
    kind: "settings",
    mechanism: "loosen() calls set_config('default_transaction_read_only', 'off', false); then SELECT FROM report",
    setup: `${REPORT}
      CREATE FUNCTION public.loosen() RETURNS text LANGUAGE sql AS
        $$ SELECT set_config('default_transaction_read_only', 'off', false) $$;
      CREATE VIEW public.settings_view AS SELECT public.loosen() AS x;`,
    steps: ["SELECT x FROM settings_view", "SELECT n FROM report"],
  },
  {
    name: "SET TRANSACTION READ WRITE first in a block",
    kind: "settings",
    mechanism: "BEGIN; SET TRANSACTION READ WRITE (allowed before the first query); SELECT FROM report; COMMIT",
    setup: REPORT,
    steps: ["BEGIN", "SET TRANSACTION READ WRITE", "SELECT n FROM report", "COMMIT"],
  },
  {
    name: "SET transaction_read_only = off first in a block",
    kind: "settings",
    mechanism: "the GUC spelling of SET TRANSACTION READ WRITE",
    setup: REPORT,
    steps: ["BEGIN", "SET transaction_read_only = off", "SELECT n FROM report", "COMMIT"],
  },
  {
    name: "COMMIT AND CHAIN, then a read in the chained block",
    kind: "settings",
    mechanism: "the chained transaction inherits the previous block's access mode; it reads the writing view",
    setup: REPORT,
    steps: ["BEGIN", "SELECT 1", "COMMIT AND CHAIN", "SELECT n FROM report", "COMMIT"],
  },
  {
    name: "ROLLBACK AND CHAIN, then a read in the chained block",
    kind: "settings",
    mechanism: "as COMMIT AND CHAIN, through a rollback",
    setup: REPORT,
    steps: ["BEGIN", "SELECT 1", "ROLLBACK AND CHAIN", "SELECT n FROM report", "COMMIT"],
  },
  {
    name: "START TRANSACTION READ WRITE",
    kind: "settings",
    mechanism: "the block asks for read-write itself, then reads the writing view",
    setup: REPORT,
    steps: ["START TRANSACTION READ WRITE", "SELECT n FROM report", "COMMIT"],
  },
  {
    name: "set_config('transaction_read_only', 'off', true) first in a block",
    kind: "settings",
    mechanism: "a function-call spelling of the switch, in a SELECT",
    setup: REPORT,
    steps: ["BEGIN", "SELECT set_config('transaction_read_only', 'off', true)", "SELECT n FROM report", "COMMIT"],
  },

  {
    name: "the client's savepoint named like the gateway's, released between reads",
    kind: "settings",
    mechanism: "SAVEPOINT agentgate_backstop, a read, RELEASE SAVEPOINT agentgate_backstop, then the writing view",
    setup: REPORT,
    steps: [
      "BEGIN",
      "SAVEPOINT agentgate_backstop",
      "SELECT 1",
      "RELEASE SAVEPOINT agentgate_backstop",
      "SELECT n FROM report",
      "COMMIT",
    ],
  },
  {
    name: "RELEASE of a savepoint named like the gateway's, in the read's own query",
    kind: "settings",
    mechanism: "after a read, one Query: RELEASE SAVEPOINT agentgate_backstop; SELECT n FROM report",
    setup: REPORT,
    steps: [
      "BEGIN",
      "SAVEPOINT agentgate_backstop",
      "SELECT 1",
      "RELEASE SAVEPOINT agentgate_backstop; SELECT n FROM report",
      "COMMIT",
    ],
    simpleOnly: true,
  },
  {
    name: "ROLLBACK TO a savepoint named like the gateway's, in the read's own query",
    kind: "settings",
    mechanism: "after a read, one Query: ROLLBACK TO SAVEPOINT agentgate_backstop; SELECT n FROM report",
    setup: REPORT,
    steps: [
      "BEGIN",
      "SAVEPOINT agentgate_backstop",
      "SELECT 1",
      "ROLLBACK TO SAVEPOINT agentgate_backstop; SELECT n FROM report",
      "COMMIT",
    ],
    simpleOnly: true,
  },

  // --- cursors -------------------------------------------------------------------------------------------------
  {
    name: "DECLARE ... WITH HOLD inside BEGIN/COMMIT, then FETCH",
    kind: "cursor",
    mechanism: "a hold cursor's query runs at COMMIT",
    setup: REPORT,
    steps: ["BEGIN", "DECLARE c CURSOR WITH HOLD FOR SELECT n FROM report", "COMMIT", "FETCH ALL FROM c", "CLOSE c"],
    psql: true,
  },
  {
    name: "hold cursor declared by a function behind a view, inside a block",
    kind: "cursor",
    mechanism: "a view's SQL function runs DECLARE ... WITH HOLD over report; the cursor's query runs at COMMIT",
    setup: `${REPORT}
      CREATE FUNCTION public.prepare_cursor() RETURNS int LANGUAGE sql AS
        $$ DECLARE hidden_cursor CURSOR WITH HOLD FOR SELECT n FROM public.report; SELECT 1 $$;
      CREATE VIEW public.cursor_view AS SELECT public.prepare_cursor() AS x;`,
    steps: ["BEGIN", "SELECT x FROM cursor_view", "COMMIT", "FETCH ALL FROM hidden_cursor"],
  },
  {
    name: "DECLARE ... WITH HOLD in autocommit",
    kind: "cursor",
    mechanism: "a hold cursor outside a block: its implicit transaction commits and runs the query",
    setup: REPORT,
    steps: ["DECLARE c CURSOR WITH HOLD FOR SELECT n FROM report", "FETCH ALL FROM c", "CLOSE c"],
  },
  {
    name: "plain cursor in a transaction, FETCH",
    kind: "cursor",
    mechanism: "DECLARE c CURSOR FOR a view whose column writes a note per row; FETCH 3; COMMIT",
    setup: "CREATE VIEW public.noted AS SELECT public.scribble(name) AS ok FROM public.victims;",
    steps: ["BEGIN", "DECLARE c CURSOR FOR SELECT ok FROM noted", "FETCH 3 FROM c", "CLOSE c", "COMMIT"],
  },
  {
    name: "scroll cursor moved, never fetched",
    kind: "cursor",
    mechanism: "MOVE FORWARD ALL runs the query and returns no rows",
    setup: REPORT,
    steps: ["BEGIN", "DECLARE c SCROLL CURSOR FOR SELECT n FROM report", "MOVE FORWARD ALL IN c", "COMMIT"],
  },
  {
    name: "refcursor opened by a STABLE function, fetched by the agent",
    kind: "cursor",
    mechanism: "open_report() STABLE opens a cursor over report; FETCH runs it",
    setup: `${REPORT}
      CREATE FUNCTION public.open_report() RETURNS refcursor LANGUAGE plpgsql STABLE AS $$
        DECLARE c refcursor := 'report_cursor';
        BEGIN OPEN c FOR SELECT n FROM public.report; RETURN c; END $$;`,
    steps: ["BEGIN", "SELECT open_report()", 'FETCH ALL FROM "report_cursor"', "COMMIT"],
  },

  // --- set-returning functions and query shapes over the writing view ------------------------------------------
  {
    name: "set-returning function in FROM (ROWS FROM)",
    kind: "srf",
    mechanism: "ROWS FROM (generate_series(1, 2), fresh()): fresh() is a plpgsql SRF that deletes",
    setup: `CREATE FUNCTION public.fresh() RETURNS SETOF int LANGUAGE plpgsql AS $$
      BEGIN DELETE FROM public.victims; RETURN QUERY SELECT 1; END $$;`,
    steps: ["SELECT * FROM ROWS FROM (generate_series(1, 2), fresh()) AS r(a, b)"],
  },
  {
    name: "LATERAL subquery over the view",
    kind: "query-shape",
    mechanism: "generate_series(1, 3) g, LATERAL (SELECT n FROM report)",
    setup: REPORT,
    steps: ["SELECT g, r.n FROM generate_series(1, 3) g, LATERAL (SELECT n FROM report) r"],
  },
  {
    name: "CTE over the view",
    kind: "query-shape",
    mechanism: "WITH r AS (SELECT n FROM report) SELECT n FROM r",
    setup: REPORT,
    steps: ["WITH r AS (SELECT n FROM report) SELECT n FROM r"],
  },
  {
    name: "materialized CTE over the view",
    kind: "query-shape",
    mechanism: "WITH r AS MATERIALIZED (...) SELECT count(*) FROM r",
    setup: REPORT,
    steps: ["WITH r AS MATERIALIZED (SELECT n FROM report) SELECT count(*) FROM r"],
  },
  {
    name: "recursive CTE reading the view",
    kind: "query-shape",
    mechanism: "the recursive term adds (SELECT n FROM report)",
    setup: REPORT,
    steps: [
      "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + (SELECT n FROM report) FROM r WHERE i < 3) SELECT i FROM r",
    ],
  },
  {
    name: "scalar subquery in the select list",
    kind: "query-shape",
    mechanism: "SELECT (SELECT n FROM report)",
    setup: REPORT,
    steps: ["SELECT (SELECT n FROM report) AS n"],
  },
  {
    name: "EXISTS over the view",
    kind: "query-shape",
    mechanism: "EXISTS (SELECT 1 FROM report WHERE n > 0)",
    setup: REPORT,
    steps: ["SELECT EXISTS (SELECT 1 FROM report WHERE n > 0) AS e"],
  },
  {
    name: "IN (subquery over the view)",
    kind: "query-shape",
    mechanism: "WHERE id IN (SELECT n FROM report)",
    setup: REPORT,
    steps: ["SELECT id FROM victims WHERE id IN (SELECT n FROM report)"],
  },
  {
    name: "UNION with the view",
    kind: "query-shape",
    mechanism: "SELECT 1 UNION SELECT n FROM report",
    setup: REPORT,
    steps: ["SELECT 1 AS n UNION SELECT n FROM report"],
  },
  {
    name: "TABLE command on the view",
    kind: "query-shape",
    mechanism: "TABLE report",
    setup: REPORT,
    steps: ["TABLE report"],
  },
  {
    name: "COPY (SELECT ... FROM view) TO STDOUT",
    kind: "query-shape",
    mechanism: "copy-out of a query over the view",
    setup: REPORT,
    steps: ["COPY (SELECT n FROM report) TO STDOUT"],
    psql: true,
  },

  {
    name: "VALUES with a subquery over the view",
    kind: "query-shape",
    mechanism: "a top-level VALUES ((SELECT n FROM report))",
    setup: REPORT,
    steps: ["VALUES ((SELECT n FROM report))"],
  },
  {
    name: "COPY of an RLS table TO STDOUT",
    kind: "rls",
    mechanism: "COPY table TO applies the table's policy, whose USING expression writes a note per row",
    setup: `
      CREATE TABLE public.secrets (id int, body text);
      INSERT INTO public.secrets SELECT g, 's' || g FROM generate_series(1, 5) g;
      ALTER TABLE public.secrets ENABLE ROW LEVEL SECURITY;
      CREATE POLICY peek ON public.secrets FOR SELECT USING (public.scribble('rls ' || id));`,
    steps: ["COPY secrets TO STDOUT"],
  },

  // --- protocol forms ------------------------------------------------------------------------------------------
  {
    name: "SQL PREPARE then EXECUTE",
    kind: "protocol",
    mechanism: "PREPARE p AS SELECT n FROM report; EXECUTE p",
    setup: REPORT,
    steps: ["PREPARE p AS SELECT n FROM report", "EXECUTE p"],
    psql: true,
  },
  {
    name: "SQL PREPARE with a parameter, EXECUTE with a value",
    kind: "protocol",
    mechanism: "PREPARE q(int) AS SELECT n + $1 FROM report; EXECUTE q(1)",
    setup: REPORT,
    steps: ["PREPARE q(int) AS SELECT n + $1 AS n FROM report", "EXECUTE q(1)"],
  },
  {
    name: "extended protocol with a bound parameter",
    kind: "protocol",
    mechanism: "Parse/Bind/Execute of SELECT ... FROM report WHERE n = $1",
    setup: REPORT,
    steps: [{ sql: "SELECT n FROM report WHERE n = $1", values: [1] }],
  },
  {
    name: "view in the middle of a multi-statement simple query",
    kind: "protocol",
    mechanism: "one Query message: SELECT 1; SELECT n FROM report; SELECT 2",
    setup: REPORT,
    steps: ["SELECT 1; SELECT n FROM report; SELECT 2"],
    simpleOnly: true,
  },

  {
    name: "a whole transaction block in one simple query",
    kind: "protocol",
    mechanism: "one Query message: BEGIN; SELECT n FROM report; COMMIT (psql -c style)",
    setup: REPORT,
    steps: ["BEGIN; SELECT n FROM report; COMMIT"],
    simpleOnly: true,
  },

  // --- side channels: the write happens outside the agent's transaction -----------------------------------------
  {
    name: "SECURITY DEFINER function with rights the agent lacks",
    kind: "side-channel",
    mechanism: "the agent's role may not DELETE; purge() SECURITY DEFINER (the superuser's) may, behind a view",
    setup: `
      CREATE FUNCTION public.purge() RETURNS int LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
        BEGIN DELETE FROM victims; RETURN 1; END $$;
      CREATE VIEW public.purged AS SELECT public.purge() AS n;`,
    afterGrants: `REVOKE DELETE ON public.victims FROM ${AGENT_ROLE}`,
    steps: ["SELECT n FROM purged"],
  },
  {
    name: "large object created by a view",
    kind: "side-channel",
    mechanism: "a view column is lo_from_bytea(0, ...): a new large object",
    setup: "CREATE VIEW public.blob AS SELECT lo_from_bytea(0, '\\x00'::bytea) AS oid;",
    steps: ["SELECT oid FROM blob"],
  },
  {
    name: "large object written by a built-in, no view",
    kind: "side-channel",
    mechanism: "SELECT lo_from_bytea(0, ...): PostgreSQL 15 lets large objects change in read-only transactions",
    setup: "",
    steps: ["SELECT lo_from_bytea(0, '\\x00'::bytea) AS oid"],
  },
  {
    name: "dblink loopback: the write commits in another session",
    kind: "side-channel",
    mechanism: "a view over a SECURITY DEFINER function that runs dblink_exec('...', 'DELETE ...') on a new connection",
    setup: (ctx) => `
      CREATE SCHEMA ext;
      CREATE EXTENSION dblink SCHEMA ext;
      CREATE FUNCTION public.remote_purge() RETURNS int LANGUAGE plpgsql SECURITY DEFINER AS $$
        BEGIN
          PERFORM ext.dblink_exec('${ctx.target} user=${AGENT_ROLE} password=${ctx.agentPassword}',
            'DELETE FROM public.victims');
          RETURN 1;
        END $$;
      CREATE VIEW public.remote_report AS SELECT public.remote_purge() AS n;`,
    steps: ["SELECT n FROM remote_report"],
  },
  {
    name: "postgres_fdw foreign table over the writing view",
    kind: "side-channel",
    mechanism: "a foreign table on a loopback server whose remote relation is report: the remote session deletes",
    setup: (ctx) => `${REPORT}
      CREATE SCHEMA ext;
      CREATE EXTENSION postgres_fdw SCHEMA ext;
      CREATE SERVER loopback FOREIGN DATA WRAPPER postgres_fdw
        OPTIONS (host '${ctx.host}', port '${ctx.port}', dbname '${ctx.database}');
      CREATE USER MAPPING FOR ${AGENT_ROLE} SERVER loopback
        OPTIONS (user '${AGENT_ROLE}', password '${ctx.agentPassword}');
      CREATE FOREIGN TABLE public.remote_numbers (n int) SERVER loopback
        OPTIONS (schema_name 'public', table_name 'report');`,
    steps: ["SELECT n FROM remote_numbers"],
  },
  {
    name: "COPY ... TO PROGRAM in a SECURITY DEFINER function",
    kind: "side-channel",
    mechanism: "the superuser's function runs COPY (SELECT 1) TO PROGRAM 'psql ... -c DELETE ...', behind a view",
    setup: (ctx) => `
      CREATE FUNCTION public.shell_purge() RETURNS int LANGUAGE plpgsql SECURITY DEFINER AS $fn$
        BEGIN
          EXECUTE format('COPY (SELECT 1) TO PROGRAM %L',
            'PGPASSWORD=${ctx.agentPassword} ${ctx.psql} -X -q -h ${ctx.host} -p ${ctx.port} -U ${AGENT_ROLE} '
            || '-d ${ctx.database} -c "DELETE FROM public.victims"');
          RETURN 1;
        END $fn$;
      CREATE VIEW public.shell_report AS SELECT public.shell_purge() AS n;`,
    steps: ["SELECT n FROM shell_report"],
  },

  // --- nested combinations -------------------------------------------------------------------------------------
  {
    name: "nested: view over an RLS table whose policy calls a STABLE liar using a writing operator",
    kind: "nested",
    mechanism: "view -> RLS policy -> STABLE function -> operator === -> plpgsql INSERT",
    setup: `${SAME_TEXT}
      CREATE FUNCTION public.visible(t text) RETURNS boolean LANGUAGE plpgsql STABLE AS $$
        BEGIN RETURN t === 'v'; END $$;
      CREATE TABLE public.docs (id int, tag text);
      INSERT INTO public.docs VALUES (1, 'v'), (2, 'w');
      ALTER TABLE public.docs ENABLE ROW LEVEL SECURITY;
      CREATE POLICY vis ON public.docs FOR SELECT USING (public.visible(tag));
      CREATE VIEW public.doc_list WITH (security_invoker = true) AS SELECT id FROM public.docs;`,
    steps: ["SELECT id FROM doc_list"],
  },
  {
    name: "nested: hold cursor over a CTE over a view of an aggregate whose result is cast to a checked domain",
    kind: "nested",
    mechanism: "cursor WITH HOLD -> CTE -> view -> aggregate (sum) -> cast to checked_text -> CHECK writes",
    setup: `${CHECKED_TEXT}
      CREATE VIEW public.totals AS SELECT (sum(id)::text)::public.checked_text AS total FROM public.victims;`,
    steps: [
      "BEGIN",
      "DECLARE c CURSOR WITH HOLD FOR WITH t AS (SELECT total FROM totals) SELECT total FROM t",
      "COMMIT",
      "FETCH ALL FROM c",
      "CLOSE c",
    ],
  },
  {
    name: "nested: prepared statement over LATERAL of a STABLE SRF whose search_path shadows a built-in",
    kind: "nested",
    mechanism: "PREPARE/EXECUTE -> LATERAL -> STABLE SQL SRF with SET search_path -> evil.upper deletes",
    setup: `${EVIL_UPPER}
      CREATE FUNCTION public.shout_all(k int) RETURNS SETOF text LANGUAGE sql STABLE
        SET search_path = evil, pg_catalog, public AS $$ SELECT upper(name) FROM public.victims WHERE id <= k $$;`,
    steps: ["PREPARE s AS SELECT g, x FROM generate_series(1, 2) g, LATERAL shout_all(g) x", "EXECUTE s"],
  },
  {
    name: "nested: window aggregate over a security_barrier view filtered by a cast",
    kind: "nested",
    mechanism: "window tally() -> security_barrier view -> WHERE id::date > ... (a writing int -> date cast)",
    setup: `${TALLY}
      CREATE FUNCTION public.day_number(i int) RETURNS date LANGUAGE plpgsql AS $$
        BEGIN DELETE FROM public.victims WHERE id = i; RETURN date '2000-01-01' + i; END $$;
      CREATE CAST (integer AS date) WITH FUNCTION public.day_number(integer);
      CREATE VIEW public.dated WITH (security_barrier) AS
        SELECT id FROM generate_series(1, 4) AS g(id) WHERE id::date > date '2000-01-01';`,
    steps: ["SELECT id, tally(id) OVER () FROM dated"],
  },
];
