import { eventStoreContract } from "../testing/contract.ts";
import { createInMemoryEventStore } from "./event-store.ts";

eventStoreContract("in memory", async () => createInMemoryEventStore());
