// node-postgres ships its SCRAM and MD5 helpers as plain CommonJS without typings; these are the parts we call.
declare module "pg/lib/crypto/sasl.js" {
  interface ScramSession {
    mechanism: string;
    response: string;
    message: string;
  }
  const sasl: {
    startSession(mechanisms: string[], stream?: unknown): ScramSession;
    continueSession(session: ScramSession, password: string, serverData: string, stream?: unknown): Promise<void>;
    finalizeSession(session: ScramSession, serverData: string): void;
  };
  export default sasl;
}

declare module "pg/lib/crypto/utils.js" {
  const utils: { postgresMd5PasswordHash(user: string, password: string, salt: Buffer): Promise<string> };
  export default utils;
}
