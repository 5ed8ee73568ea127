export { type ClientOptions, createClient, isLoopback } from "./client.ts";
export { methodPath, serviceDefinition } from "./definition.ts";
export { Code, GrpcError, toGrpcError } from "./errors.ts";
export { type AddServiceOptions, addService, bindServer, type ErrorLogger } from "./server.ts";
export type {
  CallContext,
  Client,
  ClientMethod,
  MethodImpl,
  ServiceImpl,
  StreamCallOptions,
  UnaryCallOptions,
} from "./types.ts";
