export {
  createInMemoryEventStore,
  type InMemoryEventStore,
  type InMemoryEventStoreOptions,
} from "../memory/event-store.ts";
export { type StoreDatabase, storeDatabase } from "../postgres/testing.ts";
export { collect, type EventStoreFactory, eventStoreContract, testEvent } from "./contract.ts";
