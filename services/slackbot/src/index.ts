export {
  createSlackBot,
  escapeMrkdwn,
  messageBlocks,
  type SlackBot,
  type SlackBotOptions,
  type SlackUser,
} from "./bot.ts";
export { SignedReceiver } from "./receiver.ts";
