// The reference target: the cheapest proxy Node.js can be. Each client socket is piped to PostgreSQL and back,
// byte for byte, with Nagle off on both sides; no parsing, no buffering of its own. Whatever the gateway costs
// beyond this is the gateway's own work. Run as a child of bench.ts: `pipe.ts <pg-host> <pg-port>`; it listens on
// a free loopback port, reports it over IPC, and exits when its parent goes away.
import { createConnection, createServer, type Socket } from "node:net";

const [upstreamHost, upstreamPort] = process.argv.slice(2);
if (upstreamHost === undefined || upstreamPort === undefined) {
  process.stderr.write("usage: pipe.ts <upstream-host> <upstream-port>\n");
  process.exit(2);
}

const server = createServer((client: Socket) => {
  const upstream = createConnection({ host: upstreamHost, port: Number(upstreamPort) });
  client.setNoDelay(true);
  upstream.setNoDelay(true);
  client.pipe(upstream);
  upstream.pipe(client);
  const close = () => {
    client.destroy();
    upstream.destroy();
  };
  client.once("error", close).once("close", close);
  upstream.once("error", close).once("close", close);
});

server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  process.send?.({ port: typeof address === "object" && address !== null ? address.port : 0 });
});

process.once("disconnect", () => process.exit(0));
