/** Counters a worker keeps about itself; exposed by `ProxyWorker.stats()` (and, later, as metrics). */
export class ProxyStats {
  readonly #signInRefusals = new Map<string, number>();
  connectionsAccepted = 0;

  /** Counts a refused sign-in by its reason (expired, wrong_audience, no_tls, ...). */
  signInRefused(reason: string): void {
    this.#signInRefusals.set(reason, (this.#signInRefusals.get(reason) ?? 0) + 1);
  }

  snapshot(): { connectionsAccepted: number; signInRefusals: Record<string, number> } {
    return { connectionsAccepted: this.connectionsAccepted, signInRefusals: Object.fromEntries(this.#signInRefusals) };
  }
}
