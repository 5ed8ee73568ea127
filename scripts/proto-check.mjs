// Fails when `buf generate` would change the committed generated code (generated code must never drift from proto/).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";

const committed = "libs/events/src/gen";
const out = mkdtempSync(join(tmpdir(), "agentgate-proto-"));
try {
  execFileSync("buf", ["generate", "--output", out], { stdio: "inherit" });
  const fresh = join(out, committed);
  const list = (dir) =>
    readdirSync(dir, { recursive: true })
      .map(String)
      .filter((p) => statSync(join(dir, p)).isFile())
      .sort();
  const a = list(committed);
  const b = list(fresh);
  const drift = [...new Set([...a, ...b])].filter((p) => {
    if (!a.includes(p) || !b.includes(p)) return true;
    return !readFileSync(join(committed, p)).equals(readFileSync(join(fresh, p)));
  });
  if (drift.length > 0) {
    console.error(`generated code is out of date with proto/ (run npm run proto:gen): ${drift.join(", ")}`);
    process.exit(1);
  }
  console.log(`proto: ${a.length} generated files match ${relative(".", "proto")}/`);
} finally {
  rmSync(out, { recursive: true, force: true });
}
