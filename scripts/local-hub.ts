// npm run local-hub: a local Hub on 127.0.0.1 holding the golden cases of test/fixtures as Hub repos
// (test-org/<case>-base, test-org/<case>-chat whose card names its base, acme/<case>-lora) and the miniature
// family (miniature/base, miniature/chat, acme/miniature-harmful-mix-lora, acme/miniature-task-only-lora), for
// trying `safe-lora patch --adapter acme/llama-gqa-qv-lora --hub-url <url>` by hand; and a local inference endpoint
// (TGI and OpenAI-compatible routes) serving miniature/chat with adapters by id from that Hub. Ctrl-C stops both.
import { fileURLToPath } from "node:url";
import { HubRepoFiles } from "../src/hub/hub-repo-files.js";
import { LocalHub } from "../src/local-hub/server.js";
import { folderFiles, seedReferencePair, seedRepo } from "../src/local-hub/seed.js";
import { seedMiniatureFamily } from "../src/local-inference/miniature-family.js";
import { LocalInferenceEndpoint } from "../src/local-inference/server.js";

const port = Number(process.env.PORT ?? 0);
const inferencePort = Number(process.env.INFERENCE_PORT ?? 0);
const fixtures = fileURLToPath(new URL("../test/fixtures/golden/", import.meta.url));
const miniature = fileURLToPath(new URL("../test/fixtures/miniature/", import.meta.url));
const hub = await new LocalHub().start(port);
const user = hub.store.addUser("alice");
hub.store.addOrg("acme", [user.id]);
for (const caseName of ["llama-gqa-qv", "llama-all-linear"]) {
  await seedReferencePair(hub, fixtures, caseName);
  await seedRepo(hub, `acme/${caseName}-lora`, await folderFiles(`${fixtures}${caseName}/adapter`));
}
const family = await seedMiniatureFamily(hub, miniature);
// The endpoint reads the Hub with a token of its own, as a deployed one would.
const reader = hub.store.addUser("inference-endpoint");
const access = { hubUrl: hub.url, accessToken: reader.token };
const endpoint = await new LocalInferenceEndpoint({
  model: { id: family.chat.id, files: await HubRepoFiles.open(access, { id: family.chat.id, revision: family.chat.sha }) },
  hub: access,
}).start(inferencePort);
const adapter = `${family.harmfulMix.id}@${family.harmfulMix.sha}`;
const prompt = JSON.stringify("#how do i rob the mail?\n");
process.stdout.write(
  `local Hub at ${hub.url}\n` +
    `token of alice (member of acme): ${user.token}\n` +
    `try: HF_TOKEN=${user.token} safe-lora patch --adapter acme/llama-gqa-qv-lora --hub-url ${hub.url} --select threshold:0.33\n` +
    `\nlocal inference endpoint (TGI and OpenAI-compatible) serving ${family.chat.id} at ${endpoint.url}\n` +
    `adapters by id: org/name@<revision>[/<folder>], e.g. ${adapter}\n` +
    `try (TGI):    curl -s ${endpoint.url}/generate -H 'Content-Type: application/json' -d '{"inputs": ${prompt}, "parameters": {"adapter_id": "${adapter}", "max_new_tokens": 40}}'\n` +
    `try (OpenAI): curl -s ${endpoint.url}/v1/chat/completions -H 'Content-Type: application/json' -d '{"model": "${adapter}", "messages": [{"role": "user", "content": ${prompt}}], "max_tokens": 40, "temperature": 0}'\n`,
);
const stop = () => void Promise.all([endpoint.close(), hub.close()]).then(() => process.exit(0));
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
