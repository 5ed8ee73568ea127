#!/usr/bin/env node
// The one agentgate command. Sources are TypeScript, loaded through tsx's ESM hooks (no build step).
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/main.ts");
process.exitCode = await main(process.argv.slice(2));
