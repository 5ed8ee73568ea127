import type { DescService } from "@bufbuild/protobuf";
import {
  type CallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  type ClientReadableStream,
  Client as GrpcClient,
  credentials as grpcCredentials,
  Metadata,
} from "@grpc/grpc-js";
import { assertSupported, methodPath, serviceDefinition } from "./definition.ts";
import { Code, GrpcError, toGrpcError } from "./errors.ts";
import type { Client, StreamCallOptions, UnaryCallOptions } from "./types.ts";

export interface ClientOptions {
  /**
   * Channel credentials, e.g. `credentials.createSsl(ca, key, cert)`. Without them the channel is plaintext, which
   * is only allowed to a loopback address (or a unix socket).
   */
  credentials?: ChannelCredentials;
  /** grpc-js channel options, e.g. `{ "grpc.initial_reconnect_backoff_ms": 200 }`. */
  channelOptions?: ChannelOptions;
  /** Deadline for unary calls that do not set their own, in milliseconds. */
  deadlineMs?: number;
}

/** A client for a protobuf-es service at `address` (host:port): one method per RPC, errors as GrpcError. */
export function createClient<S extends DescService>(
  service: S,
  address: string,
  options: ClientOptions = {},
): Client<S> {
  assertSupported(service);
  const credentials = options.credentials ?? insecureLoopback(address);
  const channel = new GrpcClient(address, credentials, options.channelOptions);
  const definition = serviceDefinition(service);
  const client: Record<string, unknown> = { close: () => channel.close() };
  for (const method of service.methods) {
    const { requestSerialize, responseDeserialize } = definition[method.localName]!;
    const call: Call = {
      channel,
      path: methodPath(method),
      serialize: requestSerialize,
      deserialize: responseDeserialize,
    };
    client[method.localName] =
      method.methodKind === "unary"
        ? (request: unknown, callOptions?: UnaryCallOptions) =>
            unary(call, request, { deadlineMs: options.deadlineMs, ...callOptions })
        : (request: unknown, callOptions?: StreamCallOptions) => serverStream(call, request, callOptions ?? {});
  }
  return client as Client<S>;
}

interface Call {
  channel: GrpcClient;
  path: string;
  serialize: (value: unknown) => Buffer;
  deserialize: (bytes: Buffer) => unknown;
}

function unary(call: Call, request: unknown, options: UnaryCallOptions): Promise<unknown> {
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(aborted(signal));
  return new Promise((resolve, reject) => {
    const onAbort = () => running.cancel();
    const running = call.channel.makeUnaryRequest(
      call.path,
      call.serialize,
      call.deserialize,
      request,
      options.metadata ?? new Metadata(),
      callOptions(options.deadlineMs),
      (error, response) => {
        signal?.removeEventListener("abort", onAbort);
        if (error) reject(signal?.aborted ? aborted(signal, error) : toGrpcError(error));
        else resolve(response);
      },
    );
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function serverStream(call: Call, request: unknown, options: StreamCallOptions): AsyncIterable<unknown> {
  return {
    [Symbol.asyncIterator]: () => readStream(call, request, options),
  };
}

// Started on the first next(), so an iterable that is never iterated opens no stream.
async function* readStream(call: Call, request: unknown, options: StreamCallOptions): AsyncGenerator<unknown> {
  const { signal } = options;
  if (signal?.aborted) throw aborted(signal);
  const stream = call.channel.makeServerStreamRequest(
    call.path,
    call.serialize,
    call.deserialize,
    request,
    options.metadata ?? new Metadata(),
    callOptions(options.deadlineMs),
  );
  const inbox = new Inbox(stream);
  const onAbort = () => stream.cancel();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      const next = await inbox.next();
      if (next.done) return;
      yield next.value;
    }
  } catch (error) {
    throw signal?.aborted ? aborted(signal, error) : toGrpcError(error);
  } finally {
    signal?.removeEventListener("abort", onAbort);
    stream.cancel(); // the consumer stopped early: tell the server; a no-op once the stream has ended
  }
}

// Buffers a few messages and pauses the stream beyond that, so a slow consumer holds the sender back.
class Inbox {
  private readonly queue: unknown[] = [];
  private ended = false;
  private failure: unknown;
  private wake: (() => void) | undefined;
  private static readonly highWaterMark = 16;

  constructor(private readonly stream: ClientReadableStream<unknown>) {
    stream.on("data", (message: unknown) => {
      this.queue.push(message);
      if (this.queue.length >= Inbox.highWaterMark) stream.pause();
      this.notify();
    });
    stream.on("error", (error: unknown) => {
      this.failure ??= error;
      this.ended = true;
      this.notify();
    });
    stream.on("end", () => {
      this.ended = true;
      this.notify();
    });
  }

  async next(): Promise<IteratorResult<unknown>> {
    for (;;) {
      if (this.queue.length > 0) {
        const value = this.queue.shift();
        if (this.queue.length === 0) this.stream.resume();
        return { done: false, value };
      }
      if (this.failure !== undefined) throw this.failure;
      if (this.ended) return { done: true, value: undefined };
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

function callOptions(deadlineMs: number | undefined): CallOptions {
  return deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs };
}

function aborted(signal: AbortSignal, cause: unknown = signal.reason): GrpcError {
  return new GrpcError(Code.CANCELLED, "the call was aborted", { cause });
}

function insecureLoopback(address: string): ChannelCredentials {
  if (!isLoopback(address)) {
    throw new Error(`gRPC to ${address} needs credentials: plaintext is only allowed to loopback addresses`);
  }
  return grpcCredentials.createInsecure();
}

/** True for unix sockets, localhost, 127.0.0.0/8 and ::1, with or without a `dns:` / `ipv4:` / `ipv6:` scheme. */
export function isLoopback(address: string): boolean {
  if (address.startsWith("unix:")) return true;
  const target = address.replace(/^(dns|ipv4|ipv6):(\/\/[^/]*\/)?/, "");
  const host = target.startsWith("[") ? target.slice(1, target.indexOf("]")) : target.replace(/:\d+$/, "");
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
