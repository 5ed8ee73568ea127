import { strict as assert } from "node:assert";
import { existsSync } from "node:fs";
import { connect } from "node:net";
import { describe, it } from "node:test";
import { startNats } from "./nats.ts";

/** One request/reply over the raw NATS text protocol, enough to drive the JetStream API without a client library. */
function request(port: number, subject: string, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: "127.0.0.1" });
    let received = "";
    let sent = false;
    socket.setEncoding("utf8");
    socket.setTimeout(5_000, () => socket.destroy(new Error(`no reply on ${subject}`)));
    socket.on("error", reject);
    socket.on("data", (chunk: string) => {
      received += chunk;
      if (!sent && received.startsWith("INFO ")) {
        sent = true;
        socket.write(
          `CONNECT {"verbose":false,"pedantic":false}\r\nSUB _INBOX.t 1\r\n` +
            `PUB ${subject} _INBOX.t ${Buffer.byteLength(payload)}\r\n${payload}\r\n`,
        );
      }
      const message = /MSG _INBOX\.t 1 (\d+)\r\n/.exec(received);
      if (message !== null) {
        const start = message.index + message[0].length;
        const body = received.slice(start, start + Number(message[1]));
        if (body.length === Number(message[1])) {
          socket.end();
          resolve(body);
        }
      } else if (received.includes("-ERR")) {
        socket.destroy(new Error(received));
      }
    });
  });
}

describe("startNats", () => {
  it("comes back on the same port with its JetStream store after a kill", async (t) => {
    const nats = await startNats();
    t.after(() => nats.stop());
    assert.equal(nats.url, `nats://127.0.0.1:${nats.port}`);
    const created = JSON.parse(
      await request(
        nats.port,
        "$JS.API.STREAM.CREATE.ORDERS",
        JSON.stringify({ name: "ORDERS", subjects: ["orders.>"] }),
      ),
    );
    assert.equal(created.config?.name, "ORDERS", JSON.stringify(created));

    await nats.kill();
    assert.ok(existsSync(nats.storeDir));
    await nats.start();

    const info = JSON.parse(await request(nats.port, "$JS.API.STREAM.INFO.ORDERS", ""));
    assert.equal(info.config?.name, "ORDERS", JSON.stringify(info));
  });

  it("removes its store on stop, and stop can be called twice", async () => {
    const nats = await startNats({ jetstream: false });
    assert.match(nats.version, /^\d+\.\d+/);
    await nats.stop();
    await nats.stop();
    assert.equal(existsSync(nats.storeDir), false);
    await assert.rejects(nats.start(), { code: "stopped" });
  });
});
