/**
 * Resolves once `close` has finished after the first SIGTERM or SIGINT (a service's graceful stop). The handlers are
 * removed then, so a second signal ends the process at once.
 */
export function closeOnSignal(close: () => Promise<unknown>): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      process.off("SIGTERM", stop);
      process.off("SIGINT", stop);
      close().then(
        () => resolve(),
        () => resolve(),
      );
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
  });
}
