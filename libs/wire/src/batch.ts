/**
 * Collects messages to write to one socket and merges those that lie next to each other in the same received chunk,
 * so an unchanged run of messages is written as one view of the chunk it arrived in: no copy, one write.
 */
export class WriteBatch {
  #parts: Buffer[] = [];
  #runBuffer: ArrayBufferLike | undefined;
  #runOffset = 0;
  #runLength = 0;

  add(message: Buffer): void {
    if (message.buffer === this.#runBuffer && message.byteOffset === this.#runOffset + this.#runLength) {
      this.#runLength += message.length;
      return;
    }
    this.#closeRun();
    this.#runBuffer = message.buffer;
    this.#runOffset = message.byteOffset;
    this.#runLength = message.length;
  }

  /** Returns the collected buffers in order and empties the batch. */
  take(): Buffer[] {
    this.#closeRun();
    const parts = this.#parts;
    this.#parts = [];
    return parts;
  }

  get empty(): boolean {
    return this.#runBuffer === undefined && this.#parts.length === 0;
  }

  #closeRun(): void {
    if (this.#runBuffer === undefined) return;
    this.#parts.push(Buffer.from(this.#runBuffer, this.#runOffset, this.#runLength));
    this.#runBuffer = undefined;
  }
}
