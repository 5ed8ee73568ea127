import type { DescMethod, DescService } from "@bufbuild/protobuf";
import {
  type handleServerStreamingCall,
  type handleUnaryCall,
  type Server,
  ServerCredentials,
  type ServerErrorResponse,
  type ServerUnaryCall,
  type ServerWritableStream,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { assertSupported, methodPath, serviceDefinition } from "./definition.ts";
import { Code, GrpcError } from "./errors.ts";
import type { CallContext, ServiceImpl } from "./types.ts";

/** Where a handler's unexpected errors go; a pino logger fits. */
export interface ErrorLogger {
  error(object: object, message: string): void;
}

export interface AddServiceOptions {
  /** Aborts every running call of this service (their signals' reason: UNAVAILABLE); streams then end. */
  signal?: AbortSignal;
  /** Unexpected handler errors are logged here and answered with a generic INTERNAL. */
  logger?: ErrorLogger;
}

type AnyHandler = (request: unknown, context: CallContext) => unknown;

/**
 * Registers `impl` for a protobuf-es service. A thrown GrpcError becomes its status; any other error is logged and
 * becomes INTERNAL with a generic message, so internals never reach the client.
 */
export function addService<S extends DescService>(
  server: Server,
  service: S,
  impl: ServiceImpl<S>,
  options: AddServiceOptions = {},
): void {
  assertSupported(service);
  const handlers: UntypedServiceImplementation = {};
  for (const method of service.methods) {
    const handler = (impl as Record<string, AnyHandler | undefined>)[method.localName];
    if (handler === undefined) continue; // grpc-js answers UNIMPLEMENTED
    handlers[method.localName] =
      method.methodKind === "unary"
        ? unaryHandler(method, handler, options)
        : serverStreamingHandler(method, handler, options);
  }
  server.addService(serviceDefinition(service), handlers);
}

/** Binds `address` (host:port; port 0 picks a free one) and resolves with the port. Insecure unless credentials are given. */
export function bindServer(
  server: Server,
  address: string,
  credentials: ServerCredentials = ServerCredentials.createInsecure(),
): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, credentials, (error, port) => (error ? reject(error) : resolve(port)));
  });
}

function unaryHandler(
  method: DescMethod,
  handler: AnyHandler,
  options: AddServiceOptions,
): handleUnaryCall<unknown, unknown> {
  return (call, callback) => {
    const context = callContext(call, options.signal);
    Promise.resolve()
      .then(() => handler(call.request, context) as Promise<unknown>)
      .then(
        (response) => callback(null, response),
        (error: unknown) => callback(toStatus(error, method, context, options)),
      )
      .finally(context.dispose);
  };
}

function serverStreamingHandler(
  method: DescMethod,
  handler: AnyHandler,
  options: AddServiceOptions,
): handleServerStreamingCall<unknown, unknown> {
  return (call) => {
    const context = callContext(call, options.signal);
    void pump(call, () => handler(call.request, context) as AsyncIterable<unknown>, context)
      .then(
        () => endStream(call, context.signal),
        (error: unknown) => call.emit("error", toStatus(error, method, context, options)),
      )
      .finally(context.dispose);
  };
}

async function pump(
  call: ServerWritableStream<unknown, unknown>,
  start: () => AsyncIterable<unknown>,
  context: CallContext,
): Promise<void> {
  const { signal } = context;
  for await (const message of start()) {
    if (signal.aborted) return; // leaving the loop returns the generator
    if (!call.write(message)) await drained(call, signal);
  }
}

// A stream stopped by shutdown ends with the signal's status (UNAVAILABLE: reconnect); a finished one with OK.
function endStream(call: ServerWritableStream<unknown, unknown>, signal: AbortSignal): void {
  if (call.cancelled) return;
  const reason: unknown = signal.reason;
  if (signal.aborted && reason instanceof GrpcError) call.emit("error", { code: reason.code, details: reason.message });
  else call.end();
}

function drained(call: ServerWritableStream<unknown, unknown>, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      call.off("drain", done);
      call.off("close", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    call.on("drain", done);
    call.on("close", done);
    signal.addEventListener("abort", done);
  });
}

type Disposable = CallContext & { dispose: () => void };

// One signal per call: client cancel (or disconnect), the deadline, and the service's shutdown signal.
function callContext(
  call: ServerUnaryCall<unknown, unknown> | ServerWritableStream<unknown, unknown>,
  shutdown: AbortSignal | undefined,
): Disposable {
  const controller = new AbortController();
  const abort = (reason: GrpcError) => controller.abort(reason);
  const onCancel = () => abort(new GrpcError(Code.CANCELLED, "the client cancelled the call"));
  const onShutdown = () => abort(new GrpcError(Code.UNAVAILABLE, "the server is shutting down"));
  call.on("cancelled", onCancel);
  shutdown?.addEventListener("abort", onShutdown);
  if (shutdown?.aborted) onShutdown();
  const deadline = deadlineMs(call.getDeadline());
  const timer =
    deadline === undefined
      ? undefined
      : setTimeout(
          () => abort(new GrpcError(Code.DEADLINE_EXCEEDED, "deadline exceeded")),
          Math.max(0, deadline - Date.now()),
        );
  return {
    signal: controller.signal,
    metadata: call.metadata,
    dispose: () => {
      call.off("cancelled", onCancel);
      shutdown?.removeEventListener("abort", onShutdown);
      clearTimeout(timer);
    },
  };
}

function deadlineMs(deadline: Date | number): number | undefined {
  const ms = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(ms) ? ms : undefined;
}

function toStatus(
  error: unknown,
  method: DescMethod,
  context: CallContext,
  options: AddServiceOptions,
): ServerErrorResponse {
  const known = error instanceof GrpcError ? error : context.signal.aborted ? context.signal.reason : undefined;
  if (known instanceof GrpcError) {
    return Object.assign(new Error(known.message), {
      code: known.code,
      details: known.message,
      ...(known.metadata ? { metadata: known.metadata } : {}),
    });
  }
  options.logger?.error({ err: error, rpc: methodPath(method) }, "gRPC handler failed");
  return Object.assign(new Error("internal error"), { code: Code.INTERNAL, details: "internal error" });
}
