export { createProxy, type ProxyOptions, type ProxyWorker, splitHostPort } from "./proxy.ts";
export type { SessionInfo } from "./session/session.ts";
