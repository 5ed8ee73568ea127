// An ingester in its own process, so that a test can SIGKILL it as a crash would.
// Environment: INGESTER_OPTIONS = JSON { natsUrl, storeUrl, schema, batch, ackWaitMs }.
import { createPostgresEventStore } from "@agentgate/eventstore";
import { pino } from "pino";
import { createIngester } from "../ingester/ingester.ts";

const { natsUrl, storeUrl, schema, batch, ackWaitMs, durable } = JSON.parse(process.env.INGESTER_OPTIONS ?? "{}");
const eventStore = createPostgresEventStore({ connectionString: storeUrl, schema });
const logger = pino({ level: process.env.AGENTGATE_TEST_LOG ?? "silent" }, pino.destination(2));
const ingester = createIngester({ natsServers: natsUrl, eventStore, durable, batch, ackWaitMs, logger });
await ingester.start();
process.stdout.write("ready\n");
process.on("SIGTERM", async () => {
  await ingester.stop();
  await eventStore.close();
  process.exit(0);
});
