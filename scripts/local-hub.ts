// npm run local-hub: a local Hub on 127.0.0.1 holding the golden cases of test/fixtures as Hub repos
// (test-org/<case>-base, test-org/<case>-chat whose card names its base, acme/<case>-lora), for trying
// `safe-lora patch --adapter acme/llama-gqa-qv-lora --hub-url <url>` by hand. Ctrl-C stops it.
import { fileURLToPath } from "node:url";
import { LocalHub } from "../src/local-hub/server.js";
import { folderFiles, seedReferencePair, seedRepo } from "../src/local-hub/seed.js";

const port = Number(process.env.PORT ?? 0);
const fixtures = fileURLToPath(new URL("../test/fixtures/golden/", import.meta.url));
const hub = await new LocalHub().start(port);
const user = hub.store.addUser("alice");
hub.store.addOrg("acme", [user.id]);
for (const caseName of ["llama-gqa-qv", "llama-all-linear"]) {
  await seedReferencePair(hub, fixtures, caseName);
  await seedRepo(hub, `acme/${caseName}-lora`, await folderFiles(`${fixtures}${caseName}/adapter`));
}
process.stdout.write(
  `local Hub at ${hub.url}\n` +
    `token of alice (member of acme): ${user.token}\n` +
    `try: HF_TOKEN=${user.token} safe-lora patch --adapter acme/llama-gqa-qv-lora --hub-url ${hub.url} --select threshold:0.33\n`,
);
process.on("SIGINT", () => void hub.close().then(() => process.exit(0)));
process.on("SIGTERM", () => void hub.close().then(() => process.exit(0)));
