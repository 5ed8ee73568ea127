import { type Metadata, status } from "@grpc/grpc-js";

/** gRPC status codes (OK = 0 … UNAUTHENTICATED = 16). */
export const Code = status;
export type Code = status;

/** The one error type on RPCs: a gRPC status code and a message fit for the peer; `cause` keeps what went wrong. */
export class GrpcError extends Error {
  override readonly name = "GrpcError";
  readonly code: Code;
  /** Trailing metadata sent with (server) or received with (client) the status. */
  readonly metadata: Metadata | undefined;
  constructor(code: Code, message: string, options?: { cause?: unknown; metadata?: Metadata }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.metadata = options?.metadata;
  }

  /** The status name, e.g. "UNAVAILABLE". */
  get codeName(): string {
    return Code[this.code] ?? String(this.code);
  }
}

/** A status received by grpc-js (a ServiceError) as a GrpcError; anything else as INTERNAL. */
export function toGrpcError(error: unknown): GrpcError {
  if (error instanceof GrpcError) return error;
  if (isServiceError(error)) {
    return new GrpcError(error.code, error.details, { cause: error, metadata: error.metadata });
  }
  return new GrpcError(Code.INTERNAL, error instanceof Error ? error.message : String(error), { cause: error });
}

function isServiceError(error: unknown): error is Error & { code: Code; details: string; metadata?: Metadata } {
  return (
    error instanceof Error &&
    typeof (error as { code?: unknown }).code === "number" &&
    typeof (error as { details?: unknown }).details === "string"
  );
}
