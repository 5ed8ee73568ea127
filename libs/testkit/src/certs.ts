import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { isIP } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findBinary } from "./binaries.ts";
import { runToCompletion } from "./child.ts";
import { track } from "./cleanup.ts";
import { chownToServerUser } from "./unprivileged.ts";

export interface SelfSignedCertOptions {
  /** Subject CN; default "localhost". */
  commonName?: string;
  /** Extra subjectAltNames besides localhost and 127.0.0.1: host names, IP addresses, or "DNS:…"/"IP:…" entries. */
  altNames?: string[];
}

export interface SelfSignedCert {
  certPath: string;
  keyPath: string;
  /** The certificate to trust; the same file as certPath, since it signs itself. */
  caPath: string;
  /** PEM */
  cert: string;
  /** PEM, unencrypted */
  key: string;
  dir: string;
  cleanup(): Promise<void>;
}

/** A P-256 self-signed certificate valid for two days, for localhost, 127.0.0.1 and `altNames`. */
export async function selfSignedCert(options: SelfSignedCertOptions = {}): Promise<SelfSignedCert> {
  const openssl = findBinary("openssl", "apt-get install -y openssl");
  const dir = await mkdtemp(join(tmpdir(), "agentgate-cert-"));
  const untrack = track({ child: undefined, dirs: [dir] });
  const certPath = join(dir, "cert.pem");
  const keyPath = join(dir, "key.pem");
  const cleanup = async () => {
    await rm(dir, { recursive: true, force: true });
    untrack();
  };
  try {
    const args = [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "2",
      "-subj",
      `/CN=${options.commonName ?? "localhost"}`,
      "-addext",
      `subjectAltName=${subjectAltNames(options.altNames ?? []).join(",")}`,
      "-keyout",
      keyPath,
      "-out",
      certPath,
    ];
    await runToCompletion(spawn(openssl, args, { stdio: ["ignore", "pipe", "pipe"] }), "openssl req");
    // When root, a server spawned as serverUser() (PostgreSQL's ssl_key_file) must be able to read these.
    chownToServerUser(dir, certPath, keyPath);
    const [cert, key] = await Promise.all([readFile(certPath, "utf8"), readFile(keyPath, "utf8")]);
    return { certPath, keyPath, caPath: certPath, cert, key, dir, cleanup };
  } catch (error) {
    await cleanup();
    throw error;
  }
}

function subjectAltNames(extra: readonly string[]): string[] {
  const entries = ["localhost", "127.0.0.1", ...extra].map((name) =>
    /^(DNS|IP|email|URI):/.test(name) ? name : `${isIP(name) === 0 ? "DNS" : "IP"}:${name}`,
  );
  return [...new Set(entries)];
}
