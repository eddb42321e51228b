// For scripts/build-images.sh only: an empty local Hub on 127.0.0.1 with the bot's account, so that the built
// images' `serve` and `worker` get past their start-up check of HF_TOKEN (whoami-v2) on a machine that cannot
// reach huggingface.co. It runs on the build host from the checkout; no image contains it.
// Prints one JSON line, {"url":…,"token":…}, then serves until SIGTERM.
import { LocalHub } from "../../src/local-hub/server.js";

const hub = await new LocalHub().start(0);
const bot = hub.store.addUser("safe-lora-bot");
process.stdout.write(`${JSON.stringify({ url: hub.url, token: bot.token })}\n`);
const stop = (): void => void hub.close().then(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
