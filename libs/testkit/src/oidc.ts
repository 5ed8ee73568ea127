// A real OpenID provider (oidc-provider) in this process, for the gateway's identity tests.
import {
  constants,
  createHmac,
  createPrivateKey,
  generateKeyPairSync,
  type KeyObject,
  randomBytes,
  sign,
} from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { OidcClient, OidcToken, Provider } from "oidc-provider";
import { TestkitError } from "./errors.ts";

export interface OidcClientOptions {
  clientId: string;
  clientSecret: string;
  /** Put into the access token's groups claim (see OidcProviderOptions.groupsClaim). */
  groups: string[];
  /** "opaque" gives this client reference tokens, checked by introspection; default "jwt". */
  accessTokenFormat?: "jwt" | "opaque";
}

export interface OidcProviderOptions {
  /** The `aud` of issued access tokens; default "agentgate". */
  audience?: string;
  /** Default: one client "agent" (secret "agent-secret", groups ["agents"]). */
  clients?: OidcClientOptions[];
  /** Where the groups go: a claim name or a dotted path such as `realm_access.roles`; default "groups". */
  groupsClaim?: string;
  /** Scopes the resource server knows, granted when asked for; default ["sql"]. */
  scopes?: string[];
  /** Lifetime of issued access tokens; default 300. */
  accessTokenTTLSeconds?: number;
}

/** A JSON Web Key as the provider publishes it (public members only). */
export type OidcPublicJwk = Record<string, unknown> & { kid: string; kty: string; alg: string };

export interface OidcSignOptions {
  /** Default ES256 with the provider's current key; "none" gives an unsigned token; HS* needs `key`. */
  alg?: string;
  /** Header `kid`; default the current key's; pass undefined explicitly to leave it out. */
  kid?: string | undefined;
  /** A private KeyObject (ES*, RS*, PS*, EdDSA) or the secret for HS*; default the provider's current key. */
  key?: KeyObject | Uint8Array | string;
}

export interface OidcProviderInstance {
  /** http://127.0.0.1:PORT, as the provider writes it into `iss`. */
  readonly issuer: string;
  readonly port: number;
  readonly audience: string;
  /**
   * The RFC 8707 resource indicator that yields tokens for `audience`: the audience itself when it is an absolute
   * URI, otherwise a fixed URN (a resource indicator must be an absolute URI; the provider defaults to it anyway).
   */
  readonly resource: string;
  readonly groupsClaim: string;
  readonly clients: readonly OidcClientOptions[];
  /** The key id new tokens are signed with. */
  readonly currentKid: string;
  /** An access token for `clientId`, by the client-credentials grant over HTTP. */
  token(clientId: string, options?: { scope?: string }): Promise<string>;
  /** Revokes an opaque token at the revocation endpoint, as `clientId`. */
  revoke(clientId: string, token: string): Promise<void>;
  /** A new signing key becomes current (listed first in the JWKS); the old one stays published unless dropOld. */
  rotateKeys(options?: { dropOld?: boolean }): Promise<void>;
  /**
   * A JWT with `claims` over defaults (iss, aud, iat, exp, jti); a claim set to undefined is left out. Signed with
   * the provider's current key unless `options` say otherwise, for negative tests.
   */
  sign(claims: Record<string, unknown>, options?: OidcSignOptions): Promise<string>;
  /** The JWKS the provider publishes. */
  publicJwks(): { keys: OidcPublicJwk[] };
  /** How many requests the provider has served for `path` (e.g. "/jwks"), to see what a verifier fetches. */
  requestCount(path: string): number;
  /** Closes the listener and its connections; safe to call more than once. */
  stop(): Promise<void>;
}

interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  privateJwk: Record<string, unknown>;
  publicJwk: OidcPublicJwk;
}

const DEFAULT_CLIENTS: OidcClientOptions[] = [{ clientId: "agent", clientSecret: "agent-secret", groups: ["agents"] }];
const FALLBACK_RESOURCE = "urn:agentgate:test-resource";

/** Starts an OpenID provider over http on a free loopback port, with client credentials, JWT access tokens for one
 *  audience, a groups claim, introspection and revocation; it signs with ES256 keys it generates. */
export async function startOidcProvider(options: OidcProviderOptions = {}): Promise<OidcProviderInstance> {
  // Loaded here, not at the top: most users of the test kit never need it, and it warns on Node 20 when loaded.
  const { Provider, errors } = await import("oidc-provider");
  const audience = options.audience ?? "agentgate";
  const resource = isAbsoluteUri(audience) ? audience : FALLBACK_RESOURCE;
  const clients = (options.clients ?? DEFAULT_CLIENTS).map((client) => ({ ...client, groups: [...client.groups] }));
  const groupsClaim = options.groupsClaim ?? "groups";
  const scope = (options.scopes ?? ["sql"]).join(" ");
  const ttl = options.accessTokenTTLSeconds ?? 300;
  const byId = new Map(clients.map((client) => [client.clientId, client]));
  let keys: SigningKey[] = [newSigningKey()];
  const storage = new Map<string, unknown>();
  let lastServerError: Error | undefined;

  const configuration = (): Record<string, unknown> => ({
    adapter: memoryAdapter(storage),
    jwks: { keys: keys.map((key) => key.privateJwk) },
    clients: clients.map((client) => ({
      client_id: client.clientId,
      client_secret: client.clientSecret,
      grant_types: ["client_credentials"],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: "client_secret_basic",
    })),
    clientDefaults: { id_token_signed_response_alg: "ES256" },
    extraTokenClaims: async (_ctx: unknown, token: OidcToken) =>
      nested(groupsClaim, byId.get(token.clientId ?? "")?.groups ?? []),
    ttl: { ClientCredentials: (_ctx: unknown, token: OidcToken) => token.resourceServer?.accessTokenTTL ?? ttl },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: {
        enabled: true,
        allowedPolicy: async (_ctx: unknown, caller: OidcClient) => caller.clientAuthMethod !== "none",
      },
      revocation: {
        enabled: true,
        allowedPolicy: async (_ctx: unknown, caller: OidcClient, token: OidcToken) =>
          token.clientId === caller.clientId,
      },
      resourceIndicators: {
        enabled: true,
        defaultResource: async () => resource,
        getResourceServerInfo: async (_ctx: unknown, indicator: string, client: OidcClient) => {
          if (indicator !== resource) throw new errors.InvalidTarget(`unknown resource ${indicator}`);
          return {
            scope,
            audience,
            accessTokenTTL: ttl,
            accessTokenFormat: byId.get(client.clientId)?.accessTokenFormat ?? "jwt",
            jwt: { sign: { alg: "ES256", kid: keys[0]!.kid } },
          };
        },
      },
    },
  });

  // One listener for the instance's life; rotateKeys swaps the provider behind it (oidc-provider reads its keys
  // only at construction). The adapter's storage is shared, so opaque tokens survive a rotation.
  let handle: (request: IncomingMessage, response: ServerResponse) => void = (_request, response) => {
    response.writeHead(503).end();
  };
  const requests = new Map<string, number>();
  const server = createServer((request, response) => {
    const path = new URL(request.url ?? "/", "http://localhost").pathname;
    requests.set(path, (requests.get(path) ?? 0) + 1);
    handle(request, response);
  });
  // In-process: nothing to clean up at exit, but a forgotten instance must not keep the process alive.
  server.unref();
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port: 0, host: "127.0.0.1", exclusive: true }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const issuer = `http://127.0.0.1:${port}`;

  const install = () => {
    const provider: Provider = new Provider(issuer, configuration());
    provider.on("server_error", (_ctx, error) => {
      lastServerError = error;
    });
    handle = provider.callback();
  };
  try {
    install();
  } catch (error) {
    server.close();
    throw new TestkitError("start_failed", "oidc-provider refused its configuration", { cause: error });
  }

  const clientFor = (clientId: string): OidcClientOptions => {
    const client = byId.get(clientId);
    if (client === undefined) throw new TestkitError("bad_environment", `no OIDC client "${clientId}" is configured`);
    return client;
  };
  const post = async (path: string, client: OidcClientOptions, form: Record<string, string>): Promise<Response> => {
    const credentials = `${encodeURIComponent(client.clientId)}:${encodeURIComponent(client.clientSecret)}`;
    return fetch(`${issuer}${path}`, {
      method: "POST",
      headers: { authorization: `Basic ${Buffer.from(credentials).toString("base64")}` },
      body: new URLSearchParams(form),
    });
  };
  const failure = async (what: string, response: Response): Promise<TestkitError> => {
    const detail = `${what}: HTTP ${response.status} ${await response.text()}`;
    return new TestkitError("command_failed", detail, { cause: lastServerError });
  };

  let stopping: Promise<void> | undefined;
  return {
    issuer,
    port,
    audience,
    resource,
    groupsClaim,
    clients,
    get currentKid() {
      return keys[0]!.kid;
    },
    async token(clientId, tokenOptions = {}) {
      const form: Record<string, string> = { grant_type: "client_credentials", resource };
      if (tokenOptions.scope !== undefined) form.scope = tokenOptions.scope;
      const response = await post("/token", clientFor(clientId), form);
      if (!response.ok) throw await failure(`the token request for "${clientId}" failed`, response);
      const body = (await response.json()) as { access_token?: unknown };
      if (typeof body.access_token !== "string") throw new TestkitError("command_failed", "no access_token returned");
      return body.access_token;
    },
    async revoke(clientId, token) {
      const response = await post("/token/revocation", clientFor(clientId), { token });
      if (!response.ok) throw await failure(`revoking a token of "${clientId}" failed`, response);
    },
    async rotateKeys(rotateOptions = {}) {
      const fresh = newSigningKey();
      keys = rotateOptions.dropOld === true ? [fresh] : [fresh, ...keys];
      install();
    },
    async sign(claims, signOptions = {}) {
      const now = Math.floor(Date.now() / 1000);
      const payload: Record<string, unknown> = {
        iss: issuer,
        aud: audience,
        iat: now,
        exp: now + ttl,
        jti: randomBytes(12).toString("base64url"),
        ...claims,
      };
      for (const [name, value] of Object.entries(payload)) if (value === undefined) delete payload[name];
      const current = keys[0]!;
      const alg = signOptions.alg ?? "ES256";
      const kid = "kid" in signOptions ? signOptions.kid : current.kid;
      return signJwt(payload, { alg, kid, key: signOptions.key ?? current.privateKey });
    },
    publicJwks: () => ({ keys: keys.map((key) => ({ ...key.publicJwk })) }),
    requestCount: (path) => requests.get(path) ?? 0,
    stop() {
      stopping ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return stopping;
    },
  };
}

function newSigningKey(): SigningKey {
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const kid = randomBytes(9).toString("base64url");
  const jwk = privateKey.export({ format: "jwk" }) as Record<string, unknown>;
  const { d: _d, ...publicMembers } = jwk;
  return {
    kid,
    privateKey,
    privateJwk: { ...jwk, kid, alg: "ES256", use: "sig" },
    publicJwk: { ...publicMembers, kid, alg: "ES256", use: "sig", kty: String(jwk.kty) },
  };
}

/** `{ a: { b: value } }` for the path "a.b". */
function nested(path: string, value: unknown): Record<string, unknown> {
  const [first = path, ...rest] = path.split(".");
  return { [first]: rest.length === 0 ? value : nested(rest.join("."), value) };
}

function isAbsoluteUri(value: string): boolean {
  try {
    new URL(value);
    return !value.includes("#");
  } catch {
    return false;
  }
}

const HASHES: Record<string, string> = { "256": "sha256", "384": "sha384", "512": "sha512" };

/** A compact JWS by hand, so negative tests can make tokens no well-behaved library would. */
function signJwt(
  payload: Record<string, unknown>,
  { alg, kid, key }: { alg: string; kid: string | undefined; key: KeyObject | Uint8Array | string },
): string {
  const header = { alg, typ: "at+jwt", ...(kid === undefined ? {} : { kid }) };
  const input = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(payload))}`;
  if (alg === "none") return `${input}.`;
  const hash = HASHES[alg.slice(2)];
  const data = Buffer.from(input);
  let signature: Buffer;
  if (alg.startsWith("HS") && hash !== undefined) {
    if (typeof key !== "string" && !(key instanceof Uint8Array)) {
      throw new TestkitError("unsupported", `sign() needs the ${alg} secret as a string or bytes`);
    }
    signature = createHmac(hash, key).update(data).digest();
  } else {
    const privateKey = typeof key === "string" || key instanceof Uint8Array ? createPrivateKey(Buffer.from(key)) : key;
    if (alg === "EdDSA") signature = sign(null, data, privateKey);
    else if (alg.startsWith("ES") && hash !== undefined) {
      signature = sign(hash, data, { key: privateKey, dsaEncoding: "ieee-p1363" });
    } else if (alg.startsWith("RS") && hash !== undefined) signature = sign(hash, data, privateKey);
    else if (alg.startsWith("PS") && hash !== undefined) {
      const saltLength = Number(alg.slice(2)) / 8;
      signature = sign(hash, data, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength });
    } else throw new TestkitError("unsupported", `sign() does not know the algorithm ${alg}`);
  }
  return `${input}.${signature.toString("base64url")}`;
}

function base64url(text: string): string {
  return Buffer.from(text).toString("base64url");
}

/** oidc-provider's storage interface over one Map (its own memory adapter is per provider, lost on rotation). */
function memoryAdapter(storage: Map<string, unknown>) {
  return class MemoryAdapter {
    readonly #model: string;
    constructor(model: string) {
      this.#model = model;
    }
    #key(id: string): string {
      return `${this.#model}:${id}`;
    }
    async upsert(id: string, payload: Record<string, unknown>): Promise<void> {
      storage.set(this.#key(id), payload);
    }
    async find(id: string): Promise<unknown> {
      return storage.get(this.#key(id));
    }
    async findByUid(): Promise<undefined> {
      return undefined;
    }
    async findByUserCode(): Promise<undefined> {
      return undefined;
    }
    async consume(id: string): Promise<void> {
      const payload = storage.get(this.#key(id)) as Record<string, unknown> | undefined;
      if (payload !== undefined) payload.consumed = Math.floor(Date.now() / 1000);
    }
    async destroy(id: string): Promise<void> {
      storage.delete(this.#key(id));
    }
    async revokeByGrantId(): Promise<void> {}
  };
}
