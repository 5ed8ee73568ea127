// The part of oidc-provider (v9, which ships no typings) that the test kit's identity provider uses.
declare module "oidc-provider" {
  import type { IncomingMessage, ServerResponse } from "node:http";

  export interface OidcClient {
    readonly clientId: string;
    readonly clientAuthMethod: string;
  }

  export interface OidcToken {
    readonly kind: string;
    readonly clientId?: string;
    readonly resourceServer?: { readonly accessTokenTTL?: number };
  }

  export class Provider {
    constructor(issuer: string, configuration: Record<string, unknown>);
    readonly issuer: string;
    /** A node:http request listener (Provider is a Koa application). */
    callback(): (request: IncomingMessage, response: ServerResponse) => void;
    on(event: "server_error", listener: (ctx: unknown, error: Error) => void): this;
  }

  export const errors: {
    InvalidTarget: new (description?: string) => Error;
  };

  export default Provider;
}
