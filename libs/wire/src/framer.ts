import { ProtocolError } from "./errors.ts";

/** Called with one whole message (type byte, length, body); a view into the received chunk whenever possible. */
export type MessageHandler = (type: number, message: Buffer) => void;

/**
 * Splits a byte stream of typed protocol messages (type byte + int32 length) into whole messages.
 * Messages that lie inside one chunk are passed on as views without copying; only a message that straddles chunks
 * is copied once, when its last piece arrives.
 */
export class MessageFramer {
  readonly #maxMessageSize: number;
  #pieces: Buffer[] = [];
  #pendingLength = 0;
  #needed = 0; // total size of the straddling message once its header is known, else 0

  /** @param maxMessageSize largest accepted message, counting its type byte and length word. */
  constructor(maxMessageSize: number) {
    this.#maxMessageSize = maxMessageSize;
  }

  /** Bytes held for a message that is not complete yet. */
  get buffered(): number {
    return this.#pendingLength;
  }

  /** Feeds a chunk; calls `onMessage` for every message it completes. Throws ProtocolError on a bad length. */
  push(chunk: Buffer, onMessage: MessageHandler): void {
    let offset = 0;
    if (this.#pendingLength > 0) {
      offset = this.#completePending(chunk, onMessage);
      if (offset < 0) return;
    }
    const end = chunk.length;
    while (end - offset >= 5) {
      const size = this.#checkedSize(chunk.readInt32BE(offset + 1), chunk[offset]!);
      const next = offset + size;
      if (next > end) break;
      onMessage(chunk[offset]!, chunk.subarray(offset, next));
      offset = next;
    }
    if (offset < end) {
      const rest = chunk.subarray(offset);
      this.#pieces.push(rest);
      this.#pendingLength = rest.length;
      this.#needed = rest.length >= 5 ? this.#checkedSize(rest.readInt32BE(1), rest[0]!) : 0;
    }
  }

  /** Drops any partial message. */
  reset(): void {
    this.#pieces = [];
    this.#pendingLength = 0;
    this.#needed = 0;
  }

  // Returns the offset in `chunk` after the completed message, or -1 when the chunk was consumed without completing it.
  #completePending(chunk: Buffer, onMessage: MessageHandler): number {
    let offset = 0;
    if (this.#needed === 0) {
      // The header itself straddles chunks: take just enough bytes to read it.
      const take = Math.min(5 - this.#pendingLength, chunk.length);
      this.#pieces.push(chunk.subarray(0, take));
      this.#pendingLength += take;
      offset = take;
      if (this.#pendingLength < 5) return -1;
      const header = Buffer.concat(this.#pieces, 5);
      this.#pieces = [header];
      this.#needed = this.#checkedSize(header.readInt32BE(1), header[0]!);
    }
    const take = Math.min(this.#needed - this.#pendingLength, chunk.length - offset);
    if (take > 0) this.#pieces.push(chunk.subarray(offset, offset + take));
    this.#pendingLength += take;
    offset += take;
    if (this.#pendingLength < this.#needed) return -1;
    const message = this.#pieces.length === 1 ? this.#pieces[0]! : Buffer.concat(this.#pieces, this.#needed);
    this.reset();
    onMessage(message[0]!, message);
    return offset;
  }

  #checkedSize(length: number, type: number): number {
    if (length < 4) {
      throw new ProtocolError(`invalid message length ${length} for message type ${describeType(type)}`);
    }
    if (length + 1 > this.#maxMessageSize) {
      throw new ProtocolError(
        `message of type ${describeType(type)} is ${length + 1} bytes, over the limit of ${this.#maxMessageSize}`,
        "54000",
      );
    }
    return length + 1;
  }
}

/** A printable name for a message type byte, safe to put in an error message. */
export function describeType(type: number): string {
  return type >= 0x21 && type <= 0x7e ? `'${String.fromCharCode(type)}'` : `0x${type.toString(16).padStart(2, "0")}`;
}
