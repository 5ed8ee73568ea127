import { escapeIdentifier, escapeLiteral } from "pg";
import type { StoreNames } from "./names.ts";

/**
 * The DDL of one event store schema; idempotent. The table is owned by whoever migrates (not the writer), so the
 * writer's INSERT and SELECT grants are all it has.
 */
export function schemaSql({ schema, events, channel }: StoreNames): string {
  const s = escapeIdentifier(schema);
  return `
CREATE SCHEMA IF NOT EXISTS ${s};

CREATE TABLE IF NOT EXISTS ${events} (
  position    bigint         PRIMARY KEY CHECK (position >= 1),
  stream      text           NOT NULL CHECK (stream <> ''),
  revision    bigint         NOT NULL CHECK (revision >= 0),
  event_id    uuid           NOT NULL UNIQUE,
  type        text           NOT NULL CHECK (type <> ''),
  data        bytea          NOT NULL,
  occurred_at timestamptz(3) NOT NULL,
  recorded_at timestamptz(3) NOT NULL,
  prev_hash   text           NOT NULL CHECK (prev_hash ~ '^[0-9a-f]{64}$'),
  hash        text           NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
  UNIQUE (stream, revision)
);
COMMENT ON TABLE ${events} IS
  'agentgate audit record: append-only, SHA-256 hash-chained by position (libs/eventstore/src/chain.ts)';

CREATE OR REPLACE FUNCTION ${s}.refuse_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
  RAISE EXCEPTION 'agentgate event store: % on %.% refused: events are append-only', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
    USING HINT = 'The audit record is never rewritten; record a correction as a new event.';
END $$;

CREATE OR REPLACE TRIGGER events_append_only
  BEFORE UPDATE OR DELETE OR TRUNCATE ON ${events}
  FOR EACH STATEMENT EXECUTE FUNCTION ${s}.refuse_change();

-- Each row must extend the chain: position - 1 exists with hash = prev_hash, and time does not go backwards.
-- Appenders hold the append lock, so this never fires for them; it stops a writer that bypasses the lock.
CREATE OR REPLACE FUNCTION ${s}.check_link() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
  previous record;
BEGIN
  IF NEW.position = 1 THEN
    IF NEW.prev_hash <> repeat('0', 64) THEN
      RAISE EXCEPTION 'agentgate event store: position 1 must have prev_hash 0…0' USING ERRCODE = '23000';
    END IF;
    RETURN NEW;
  END IF;
  SELECT hash, recorded_at INTO previous FROM ${events} WHERE position = NEW.position - 1;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'agentgate event store: position % does not extend the log: position % is missing',
      NEW.position, NEW.position - 1 USING ERRCODE = '23000';
  END IF;
  IF previous.hash <> NEW.prev_hash OR previous.recorded_at > NEW.recorded_at THEN
    RAISE EXCEPTION 'agentgate event store: position % does not link to position %', NEW.position, NEW.position - 1
      USING ERRCODE = '23000';
  END IF;
  RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER events_linked
  BEFORE INSERT ON ${events}
  FOR EACH ROW EXECUTE FUNCTION ${s}.check_link();

CREATE OR REPLACE FUNCTION ${s}.notify_appended() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
  PERFORM pg_notify(TG_ARGV[0], (SELECT max(position)::text FROM appended));
  RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER events_notify
  AFTER INSERT ON ${events} REFERENCING NEW TABLE AS appended
  FOR EACH STATEMENT EXECUTE FUNCTION ${s}.notify_appended(${escapeLiteral(channel)});
`;
}

/** Grants that leave the writer able to insert and read events, nothing else. */
export function grantsSql({ schema, events }: StoreNames, writerRole: string): string {
  const s = escapeIdentifier(schema);
  const writer = escapeIdentifier(writerRole);
  return `
REVOKE ALL ON SCHEMA ${s} FROM PUBLIC;
REVOKE ALL ON ${events} FROM PUBLIC;
REVOKE ALL ON ${events} FROM ${writer};
GRANT USAGE ON SCHEMA ${s} TO ${writer};
GRANT SELECT, INSERT ON ${events} TO ${writer};
`;
}
