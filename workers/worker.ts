// npm run worker: a worker process on its own, taking jobs from the queue that `safe-lora serve` fills
// (the same DATA_DIR). Run as many as the machine allows; at most one job per repo runs at a time.
import { main } from "../src/cli/main.js";

process.exitCode = await main(["worker", ...process.argv.slice(2)]);
