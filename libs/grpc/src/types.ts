import type { DescMessage, DescService, MessageInitShape, MessageShape } from "@bufbuild/protobuf";
import type { Metadata } from "@grpc/grpc-js";

/** What a server handler gets besides its request. */
export interface CallContext {
  /** Aborted when the client cancels or goes away, the deadline passes, or the server shuts down (reason: a GrpcError). */
  signal: AbortSignal;
  metadata: Metadata;
}

type Unary<I extends DescMessage, O extends DescMessage> = { methodKind: "unary"; input: I; output: O };
type ServerStreaming<I extends DescMessage, O extends DescMessage> = {
  methodKind: "server_streaming";
  input: I;
  output: O;
};

/** A server handler for one RPC: unary returns its response, server streaming is an async generator of them. */
export type MethodImpl<M> =
  M extends Unary<infer I, infer O>
    ? (request: MessageShape<I>, context: CallContext) => Promise<MessageInitShape<O>>
    : M extends ServerStreaming<infer I, infer O>
      ? (request: MessageShape<I>, context: CallContext) => AsyncIterable<MessageInitShape<O>>
      : never;

/** One handler per RPC of a generated service, by `localName`. */
export type ServiceImpl<S extends DescService> = { [K in keyof S["method"]]: MethodImpl<S["method"][K]> };

export interface UnaryCallOptions {
  signal?: AbortSignal;
  /** Fails the call with DEADLINE_EXCEEDED after this many milliseconds. */
  deadlineMs?: number;
  metadata?: Metadata;
}

export interface StreamCallOptions {
  /** Cancels the stream: the iteration throws a CANCELLED GrpcError. Breaking out of `for await` cancels too. */
  signal?: AbortSignal;
  deadlineMs?: number;
  metadata?: Metadata;
}

/** A client method for one RPC. */
export type ClientMethod<M> =
  M extends Unary<infer I, infer O>
    ? (request: MessageInitShape<I>, options?: UnaryCallOptions) => Promise<MessageShape<O>>
    : M extends ServerStreaming<infer I, infer O>
      ? (request: MessageInitShape<I>, options?: StreamCallOptions) => AsyncIterable<MessageShape<O>>
      : never;

/** A typed client: one method per RPC (by `localName`), plus `close()`. */
export type Client<S extends DescService> = { [K in keyof S["method"]]: ClientMethod<S["method"][K]> } & {
  /** Closes the channel; calls still running fail with CANCELLED or UNAVAILABLE. */
  close(): void;
};
