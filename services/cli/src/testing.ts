import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The agentgate command as a user runs it. */
export const agentgateBin = fileURLToPath(new URL("../bin/agentgate.js", import.meta.url));

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `agentgate ARGS` in a child process with only PATH and `env` set; resolves with its exit code and output. */
export function agentgate(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CommandResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [agentgateBin, ...args],
      { env: { PATH: process.env.PATH, ...env }, timeout: 30_000 },
      (error, stdout, stderr) =>
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}
