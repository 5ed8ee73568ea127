const IDLE = Symbol("idle");

/**
 * Groups an async iterable into batches of what is available without waiting: a batch ends when it holds `max`
 * items or when the next item is not ready by the next turn of the event loop. The pending read is kept, so nothing
 * is lost between batches.
 */
export async function* batches<T>(source: AsyncIterable<T>, max: number): AsyncGenerator<T[]> {
  const iterator = source[Symbol.asyncIterator]();
  let pending: Promise<IteratorResult<T>> | undefined;
  try {
    for (;;) {
      const first = await (pending ?? iterator.next());
      pending = undefined;
      if (first.done) return;
      const batch = [first.value];
      let done = false;
      while (batch.length < max) {
        pending = iterator.next();
        const next = await Promise.race([pending, nextTurn()]);
        if (next === IDLE) break;
        pending = undefined;
        if (next.done) {
          done = true;
          break;
        }
        batch.push(next.value);
      }
      yield batch;
      if (done) return;
    }
  } finally {
    // With a read in flight, an async generator source queues return() behind it: do not wait for that read.
    pending?.catch(() => undefined);
    const closing = Promise.resolve(iterator.return?.()).catch(() => undefined);
    if (pending === undefined) await closing;
  }
}

function nextTurn(): Promise<typeof IDLE> {
  return new Promise((resolve) => setImmediate(resolve, IDLE));
}
