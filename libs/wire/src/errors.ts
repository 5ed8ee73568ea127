/** A violation of the wire protocol by a peer; carries the SQLSTATE to report and ends that connection only. */
export class ProtocolError extends Error {
  override readonly name = "ProtocolError";
  /** SQLSTATE, 08P01 (protocol_violation) unless said otherwise. */
  readonly code: string;
  constructor(message: string, code = "08P01", options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
}
