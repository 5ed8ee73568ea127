import { renderReplay } from "@agentgate/audit";
import { auditConfig, type Io, options, STDIO, withReadModel } from "./sessions.ts";
import { UsageError } from "./usage.ts";

const USAGE = `usage: agentgate replay SESSION_ID [--width N] [--config FILE]

Shows a session from the audit read models as a timeline: time since the session started, the statement (one line),
the policy decision and rule, the outcome (status and SQLSTATE), rows and duration.
  --width N         characters of SQL shown per statement (default 60)
  --config FILE     agentgate.yaml with an audit section (default: AGENTGATE_CONFIG)
`;

/** `agentgate replay <session-id>`: exit 0 with the timeline, 1 when the session is unknown. */
export async function runReplay(args: string[], io: Io = STDIO): Promise<number> {
  const { values, positionals } = options(args, {
    width: { type: "string" },
    config: { type: "string", short: "c" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help === true) {
    io.out.write(USAGE);
    return 0;
  }
  const [sessionId, ...extra] = positionals;
  if (sessionId === undefined || extra.length > 0)
    throw new UsageError("expected one session id: agentgate replay SESSION_ID");
  const width = values.width === undefined ? undefined : Number(values.width);
  if (width !== undefined && !(Number.isInteger(width) && width >= 10))
    throw new UsageError("--width must be an integer >= 10");
  return withReadModel(auditConfig(values.config), io, "replay", async (read) => {
    const session = await read.session(sessionId);
    if (session === undefined) {
      io.err.write(`agentgate replay: no session ${JSON.stringify(sessionId)} in the audit read models\n`);
      return 1;
    }
    io.out.write(
      renderReplay(session, await read.statements(sessionId), { sqlWidth: width }, await read.approvals(sessionId)),
    );
    return 0;
  });
}
