export { findBinary } from "./binaries.ts";
export { type SelfSignedCert, type SelfSignedCertOptions, selfSignedCert } from "./certs.ts";
export { TestkitError, type TestkitErrorCode } from "./errors.ts";
export { type NatsInstance, type NatsOptions, startNats } from "./nats.ts";
export {
  type OidcClientOptions,
  type OidcProviderInstance,
  type OidcProviderOptions,
  type OidcPublicJwk,
  type OidcSignOptions,
  startOidcProvider,
} from "./oidc.ts";
export { acceptsConnections, freePort, waitForPort } from "./ports.ts";
export { type PostgresAuth, type PostgresInstance, type PostgresOptions, startPostgres } from "./postgres.ts";
export type { PostgresClientOps, PostgresCoordinates } from "./postgres-client.ts";
export {
  type FreshDatabase,
  freshDatabase,
  postgresEnvValue,
  sharedNats,
  sharedPostgres,
  TEST_NATS_ENV,
  TEST_PG_ENV,
} from "./shared.ts";
export {
  chownToServerUser,
  type ServerUser,
  type SpawnServerOptions,
  serverUser,
  spawnServer,
} from "./unprivileged.ts";
