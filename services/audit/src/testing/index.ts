export { appendAsIngested, collectAll, eventually, publishAll } from "./helpers.ts";
export { type StoreDatabase, storeDatabase } from "./store-database.ts";
