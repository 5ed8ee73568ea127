import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { serialize } from "pg-protocol";
import { ProtocolError } from "./errors.ts";
import { parseStartupPacket, startupPacketSize } from "./startup.ts";

function packet(code: number, body: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(8);
  head.writeInt32BE(8 + body.length, 0);
  head.writeInt32BE(code, 4);
  return Buffer.concat([head, body]);
}

const isProtocolError = (code: string, pattern: RegExp) => (e: unknown) =>
  e instanceof ProtocolError && e.code === code && pattern.test(e.message);

describe("startup packets", () => {
  it("parses a StartupMessage as node-postgres writes it", () => {
    const bytes = serialize.startup({
      user: "agent",
      database: "app",
      application_name: "tést",
      client_encoding: "UTF8",
    });
    assert.equal(startupPacketSize(bytes), bytes.length);
    const parsed = parseStartupPacket(bytes);
    assert.equal(parsed.kind, "startup");
    if (parsed.kind !== "startup") return;
    assert.equal(parsed.major, 3);
    assert.equal(parsed.minor, 0);
    assert.deepEqual(
      [...parsed.parameters],
      [
        ["user", "agent"],
        ["database", "app"],
        ["application_name", "tést"],
        ["client_encoding", "UTF8"],
      ],
    );
  });

  it("needs more bytes until the packet is whole, at every cut", () => {
    const bytes = serialize.startup({ user: "agent", database: "app" });
    for (let cut = 0; cut < bytes.length; cut++) assert.equal(startupPacketSize(bytes.subarray(0, cut)), 0);
  });

  it("separates protocol options from parameters (protocol 3.2 request)", () => {
    const body = Buffer.from("user\0agent\0_pq_.test_option\0on\0\0");
    const parsed = parseStartupPacket(packet((3 << 16) | 2, body));
    assert.ok(parsed.kind === "startup");
    assert.equal(parsed.minor, 2);
    assert.deepEqual(parsed.protocolOptions, ["_pq_.test_option"]);
    assert.deepEqual([...parsed.parameters.keys()], ["user"]);
  });

  it("recognises SSL, GSSENC and cancel requests", () => {
    assert.deepEqual(parseStartupPacket(serialize.requestSsl()), { kind: "ssl" });
    assert.deepEqual(parseStartupPacket(packet(80877104)), { kind: "gssenc" });
    const cancel = parseStartupPacket(serialize.cancel(1234, -5));
    assert.ok(cancel.kind === "cancel");
    assert.equal(cancel.processId, 1234);
    assert.equal(cancel.secretKey.readInt32BE(0), -5);
  });

  it("refuses impossible lengths, bad layouts and other protocol versions", () => {
    const tooLong = Buffer.alloc(8);
    tooLong.writeInt32BE(10001, 0);
    assert.throws(() => startupPacketSize(tooLong), isProtocolError("08P01", /invalid length of startup packet/));
    const tooShort = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0]);
    assert.throws(() => startupPacketSize(tooShort), isProtocolError("08P01", /invalid length/));
    assert.throws(
      () => parseStartupPacket(packet(3 << 16, Buffer.from("user\0agent\0"))),
      isProtocolError("08P01", /expected terminator/),
    );
    assert.throws(
      () => parseStartupPacket(packet(3 << 16, Buffer.from("user\0agent\0\0junk"))),
      isProtocolError("08P01", /data after terminator/),
    );
    assert.throws(() => parseStartupPacket(packet(3 << 16, Buffer.from("user\0"))), /has no value|terminator/);
    assert.throws(
      () => parseStartupPacket(packet(2 << 16)),
      isProtocolError("0A000", /unsupported frontend protocol 2\.0/),
    );
    assert.throws(() => parseStartupPacket(packet(80877103, Buffer.alloc(4))), /SSL request/);
  });
});
