import { parseArgs } from "node:util";
import { IdentityConfigError, identityProviderUrl } from "@agentgate/identity";
import * as oidc from "openid-client";
import { UsageError } from "./usage.ts";

const USAGE = `usage: agentgate token --issuer URL --client-id ID [--client-secret S] [--audience A] [--scope S]

Gets an access token by the client-credentials grant and prints it (only the token, then a newline).
  --issuer URL          the OIDC issuer (https; http only on 127.0.0.1, localhost or [::1])
  --client-id ID        the client to sign in as
  --client-secret S     its secret; better from the environment (AGENTGATE_CLIENT_SECRET), out of ps and history
  --audience A          the resource the token is for (an absolute URI, sent as the RFC 8707 resource indicator)
  --scope S             space-separated scopes to ask for
`;

const SECRET_ENV = "AGENTGATE_CLIENT_SECRET";

class DiscoveryFailed extends Error {}

export interface TokenRequest {
  issuer: URL;
  clientId: string;
  clientSecret: string;
  audience: string | undefined;
  scope: string | undefined;
}

/** `agentgate token`: exit 0 with the token on stdout; 1 with one line on stderr when the provider says no. */
export async function runToken(args: string[]): Promise<number> {
  const request = parseTokenArgs(args);
  if (request === "help") {
    process.stdout.write(USAGE);
    return 0;
  }
  try {
    process.stdout.write(`${await clientCredentialsToken(request)}\n`);
    return 0;
  } catch (error) {
    process.stderr.write(`agentgate token: ${oneLine(describe(error), request.clientSecret)}\n`);
    return 1;
  }
}

function parseTokenArgs(args: string[]): TokenRequest | "help" {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        issuer: { type: "string" },
        "client-id": { type: "string" },
        "client-secret": { type: "string" },
        audience: { type: "string" },
        scope: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (error) {
    // node's message for a stray argument quotes it, and that could be a misplaced secret.
    const code = (error as { code?: string }).code;
    if (code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL") throw new UsageError("unexpected argument: only options");
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  if (values.help === true) return "help";
  const text = (name: string): string | undefined => {
    const value = values[name];
    return typeof value === "string" && value !== "" ? value : undefined;
  };
  const issuer = text("issuer");
  if (issuer === undefined) throw new UsageError("--issuer URL is required");
  const clientId = text("client-id");
  if (clientId === undefined) throw new UsageError("--client-id ID is required");
  const clientSecret = text("client-secret") ?? nonEmpty(process.env[SECRET_ENV]);
  if (clientSecret === undefined) throw new UsageError(`no client secret: pass --client-secret or set ${SECRET_ENV}`);
  const audience = text("audience");
  if (audience !== undefined && !isAbsoluteUri(audience)) {
    throw new UsageError("--audience must be an absolute URI (it is sent as the RFC 8707 resource indicator)");
  }
  let issuerUrl: URL;
  try {
    issuerUrl = identityProviderUrl(issuer, true, "--issuer");
  } catch (error) {
    if (error instanceof IdentityConfigError) throw new UsageError(error.message);
    throw error;
  }
  return { issuer: issuerUrl, clientId, clientSecret, audience, scope: text("scope") };
}

export async function clientCredentialsToken(request: TokenRequest): Promise<string> {
  let config: oidc.Configuration;
  try {
    config = await oidc.discovery(
      request.issuer,
      request.clientId,
      undefined,
      // HTTP Basic: the client authentication every OAuth 2.0 server must support (RFC 6749 section 2.3.1).
      oidc.ClientSecretBasic(request.clientSecret),
      { execute: request.issuer.protocol === "http:" ? [oidc.allowInsecureRequests] : [] },
    );
  } catch (error) {
    throw new DiscoveryFailed(`discovery at ${request.issuer.href} failed: ${describe(error)}`, { cause: error });
  }
  const parameters: Record<string, string> = {};
  if (request.audience !== undefined) parameters.resource = request.audience;
  if (request.scope !== undefined) parameters.scope = request.scope;
  const response = await oidc.clientCredentialsGrant(config, parameters);
  return response.access_token;
}

/** What went wrong, from openid-client's errors: the provider's OAuth error code and description when it sent one. */
function describe(error: unknown): string {
  if (error instanceof DiscoveryFailed) return error.message;
  if (error instanceof oidc.ResponseBodyError) {
    return `the identity provider refused: ${oauthError(error.error, error.error_description)}`;
  }
  if (error instanceof oidc.WWWAuthenticateChallengeError) {
    const parameters = error.cause[0]?.parameters ?? {};
    const detail = oauthError(parameters.error ?? `HTTP ${error.status}`, parameters.error_description);
    return `the identity provider refused the client credentials: ${detail}`;
  }
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause;
  const code =
    typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string"
      ? ` (${cause.code})`
      : "";
  return `${error.message}${code}`;
}

function oauthError(code: string, description: string | undefined): string {
  return description === undefined || description === "" ? code : `${code} (${description})`;
}

/** One line, and never the secret, whatever a provider or a library put into the message. */
function oneLine(message: string, secret: string): string {
  return message.split(secret).join("***").replace(/\s+/g, " ").trim();
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}

function isAbsoluteUri(value: string): boolean {
  try {
    new URL(value);
    return !value.includes("#");
  } catch {
    return false;
  }
}
