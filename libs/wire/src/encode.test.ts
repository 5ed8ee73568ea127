import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { BackendMessage } from "pg-protocol/dist/messages.js";
import { Parser } from "pg-protocol/dist/parser.js";
import {
  authenticationCleartextPassword,
  authenticationOk,
  backendKeyData,
  errorResponse,
  negotiateProtocolVersion,
  noticeResponse,
  parameterStatus,
  readyForQuery,
} from "./encode.ts";

// node-postgres's own parser is the oracle: what it decodes is what a real client sees.
function decode(bytes: Buffer): Record<string, unknown> {
  const out: BackendMessage[] = [];
  new Parser().parse(bytes, (m) => out.push(m));
  assert.equal(out.length, 1);
  return out[0] as unknown as Record<string, unknown>;
}

describe("backend message encoders", () => {
  it("encode what node-postgres decodes", () => {
    assert.equal(decode(authenticationOk()).name, "authenticationOk");
    assert.equal(decode(authenticationCleartextPassword()).name, "authenticationCleartextPassword");
    assert.deepEqual(
      pick(decode(parameterStatus("server_version", "15.2 é")), "name", "parameterName", "parameterValue"),
      { name: "parameterStatus", parameterName: "server_version", parameterValue: "15.2 é" },
    );
    assert.deepEqual(pick(decode(backendKeyData(42, -7)), "processID", "secretKey"), { processID: 42, secretKey: -7 });
    assert.equal(decode(readyForQuery("T")).status, "T");
  });

  it("encodes errors and notices with all their fields", () => {
    const error = decode(
      errorResponse({ severity: "FATAL", code: "28000", message: "no\0 user", detail: "d", hint: "h" }),
    );
    assert.deepEqual(pick(error, "name", "severity", "code", "message", "detail", "hint"), {
      name: "error",
      severity: "FATAL",
      code: "28000",
      message: "no user",
      detail: "d",
      hint: "h",
    });
    const notice = decode(noticeResponse({ severity: "NOTICE", code: "00000", message: "hi" }));
    assert.deepEqual(pick(notice, "name", "message"), { name: "notice", message: "hi" });
  });

  it("encodes NegotiateProtocolVersion byte for byte", () => {
    const bytes = negotiateProtocolVersion(0, ["_pq_.a"]);
    assert.deepEqual(
      bytes,
      Buffer.concat([Buffer.from([0x76, 0, 0, 0, 19, 0, 3, 0, 0, 0, 0, 0, 1]), Buffer.from("_pq_.a\0")]),
    );
  });
});

function pick(o: Record<string, unknown>, ...keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((k) => [k, o[k]]));
}
