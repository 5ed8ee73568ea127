export { type ExportOptions, exportBundle, verifyBundle } from "./bundle.ts";
export {
  BUNDLE_FORMAT,
  type BundleCheckpoint,
  type BundleManifest,
  EVENTS_FILE,
  MANIFEST_FILE,
} from "./bundle-format.ts";
export { CHAIN_FORMAT_VERSION, type ChainedFields, chainHash, GENESIS_HASH } from "./chain.ts";
export {
  CHECKPOINT_TYPE,
  type CheckpointSigner,
  type CheckpointStatement,
  checkpointSignatureValid,
  createCheckpointSigner,
  decodeCheckpoint,
  encodeCheckpoint,
  type SignedCheckpoint,
  statementMessage,
} from "./checkpoint.ts";
export {
  EventIdConflictError,
  EventStoreError,
  type EventStoreErrorCode,
  WrongExpectedRevisionError,
} from "./errors.ts";
export {
  keyIdOf,
  loadPrivateKey,
  loadPublicKey,
  type PrivateKeyInput,
  type PublicKeyInput,
  publicKeyPem,
} from "./keys.ts";
export {
  createPostgresEventStore,
  type PostgresEventStore,
  type PostgresEventStoreOptions,
} from "./postgres/event-store.ts";
export { type MigrateOptions, migrate } from "./postgres/migrate.ts";
export { DEFAULT_SCHEMA } from "./postgres/names.ts";
export {
  type AppendOptions,
  type AppendResult,
  CHECKPOINT_STREAM,
  type ChainHead,
  type EventStore,
  type EventToAppend,
  type ExpectedRevision,
  RESERVED_STREAM_PREFIX,
  type ReadAllOptions,
  type ReadStreamOptions,
  type RecordedEvent,
  type SubscribeAllOptions,
} from "./store.ts";
export {
  type ChainAnchor,
  type PostgresLocation,
  type SignatureCheck,
  type VerifyFailure,
  type VerifyOk,
  type VerifyOptions,
  type VerifyResult,
  verifyEvents,
  verifyStore,
} from "./verify.ts";
