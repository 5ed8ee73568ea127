export { createProxy, type ProxyWorker, type ProxyOptions, splitHostPort } from "./proxy.ts";
