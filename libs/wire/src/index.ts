export { WriteBatch } from "./batch.ts";
export { Backend, FRONTEND_TYPES, Frontend, MAX_STARTUP_PACKET_LENGTH, PROTOCOL_3_0, RequestCode } from "./codes.ts";
export {
  authenticationCleartextPassword,
  authenticationOk,
  backendKeyData,
  type ErrorFields,
  errorResponse,
  negotiateProtocolVersion,
  noticeResponse,
  parameterStatus,
  readyForQuery,
} from "./encode.ts";
export { ProtocolError } from "./errors.ts";
export { describeType, MessageFramer, type MessageHandler } from "./framer.ts";
export { parseStartupPacket, type StartupPacket, startupPacketSize } from "./startup.ts";
