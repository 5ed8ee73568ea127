import { strict as assert } from "node:assert";
import { existsSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { type ConnectionOptions, connect, createServer } from "node:tls";
import { selfSignedCert } from "./certs.ts";

/** Completes a TLS handshake against a local server using `cert`, and reports what the client concluded. */
async function handshake(cert: { cert: string; key: string }, options: ConnectionOptions): Promise<string> {
  const server = createServer({ cert: cert.cert, key: cert.key }, (socket) => socket.end("hello"));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  try {
    return await new Promise<string>((resolve, reject) => {
      const socket = connect({ host: "127.0.0.1", port, ...options }, () => {
        socket.setEncoding("utf8");
        socket.once("data", (data: string) => resolve(data));
      });
      socket.once("error", reject);
    });
  } finally {
    server.close();
  }
}

describe("selfSignedCert", () => {
  it("is trusted by node:tls for localhost, 127.0.0.1 and the extra names when used as ca", async (t) => {
    const cert = await selfSignedCert({ altNames: ["agentgate.test"] });
    t.after(() => cert.cleanup());
    assert.equal(cert.caPath, cert.certPath);
    assert.equal(await handshake(cert, { ca: cert.cert }), "hello");
    assert.equal(await handshake(cert, { ca: cert.cert, servername: "localhost" }), "hello");
    assert.equal(await handshake(cert, { ca: cert.cert, servername: "agentgate.test" }), "hello");
  });

  it("is refused without ca and for names it does not cover", async (t) => {
    const cert = await selfSignedCert();
    t.after(() => cert.cleanup());
    await assert.rejects(handshake(cert, {}), { code: "DEPTH_ZERO_SELF_SIGNED_CERT" });
    await assert.rejects(handshake(cert, { ca: cert.cert, servername: "elsewhere.test" }), {
      code: "ERR_TLS_CERT_ALTNAME_INVALID",
    });
  });

  it("removes its directory on cleanup", async () => {
    const cert = await selfSignedCert({ commonName: "gateway" });
    await cert.cleanup();
    assert.equal(existsSync(cert.dir), false);
  });
});
