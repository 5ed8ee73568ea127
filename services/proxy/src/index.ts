export { createProxy, type ProxyOptions, type ProxyWorker, splitHostPort } from "./proxy.ts";
