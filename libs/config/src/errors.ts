/** A configuration problem: which key, and why. Never carries the offending value (it may be a secret). */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  readonly key: string;
  readonly reason: string;
  constructor(key: string, reason: string, options?: ErrorOptions) {
    super(key === "" ? reason : `${key}: ${reason}`, options);
    this.key = key;
    this.reason = reason;
  }
}
