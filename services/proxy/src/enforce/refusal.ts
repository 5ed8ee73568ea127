import { randomBytes } from "node:crypto";
import { serialize } from "pg-protocol";

/**
 * A refused statement is replaced by one that makes the server itself raise the refusal: the client then sees
 * exactly what a server-side error gives it, in order with everything else in flight, and a transaction block is
 * failed until ROLLBACK, as after any error.
 */
export function refusalSql(sqlstate: string, message: string, hint?: string): string {
  const tag = `ag_${randomBytes(6).toString("hex")}`;
  const literal = (text: string) => {
    let q = `m${randomBytes(4).toString("hex")}`;
    while (text.includes(`$${q}$`)) q = `m${randomBytes(4).toString("hex")}`;
    return `$${q}$${text}$${q}$`;
  };
  const parts = [`ERRCODE = '${sqlstate}'`, `MESSAGE = ${literal(message)}`];
  if (hint !== undefined) parts.push(`HINT = ${literal(hint)}`);
  return `DO $${tag}$BEGIN RAISE EXCEPTION USING ${parts.join(", ")}; END$${tag}$`;
}

/** The simple-protocol replacement: one Query. */
export function refusalQuery(sqlstate: string, message: string, hint?: string): Buffer {
  return serialize.query(refusalSql(sqlstate, message, hint));
}

/**
 * The extended-protocol replacement for a refused Parse or Bind: the unnamed statement is made to raise, bound and
 * executed. The server answers ParseComplete and BindComplete (which the gateway swallows), then the error, and then
 * skips the client's remaining messages up to its Sync, as it would after an error of its own.
 */
export function refusalExtended(sqlstate: string, message: string, hint?: string): Buffer {
  return Buffer.concat([
    serialize.parse({ text: refusalSql(sqlstate, message, hint) }),
    serialize.bind({}),
    serialize.execute({}),
  ]);
}

/**
 * The refusal as the client should see it: the server's ErrorResponse without its CONTEXT field, which would only
 * say that a PL/pgSQL block raised it.
 */
export function withoutContext(error: Buffer): Buffer {
  const fields: Buffer[] = [];
  let offset = 5;
  while (offset < error.length && error[offset] !== 0) {
    const end = error.indexOf(0, offset + 1);
    if (end < 0) return error;
    if (error[offset] !== 0x57) fields.push(error.subarray(offset, end + 1)); // 'W': where (context)
    offset = end + 1;
  }
  const body = Buffer.concat([...fields, Buffer.from([0])]);
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = error[0]!;
  out.writeInt32BE(4 + body.length, 1);
  body.copy(out, 5);
  return out;
}
