import { commit } from "@huggingface/hub";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startBot } from "../app/start-bot.js";
import { loadEnv } from "../config/env.js";
import { SafeLoraError } from "../errors.js";
import { LocalHub } from "../local-hub/server.js";
import { folderFiles, seedRepo } from "../local-hub/seed.js";
import { seedMiniatureFamily } from "../local-inference/miniature-family.js";
import { LocalInferenceEndpoint } from "../local-inference/server.js";
import type { BehaviourEvidence } from "../report/behaviour-schema.js";
import { SafeLoraReport } from "../report/schema.js";
import { LocalFolder } from "../storage/local-folder.js";
import { PACKAGE_ROOT } from "../version.js";
import type { CliIo } from "./io.js";

export const DEMO_HELP = `Usage: safe-lora demo [--keep]     (same as npm run demo)

Runs the whole bot offline: a local Hub with the project's miniature model family (a real char-level Llama model,
its aligned chat fine-tune and a LoRA adapter), a local inference endpoint serving it, the bot pointed at both, an
adapter pushed by an organisation member, the pull request the bot opens with the refusal and task scores it
measured before and after, and a re-patch asked for in a comment. Prints the pull request, the figures, the report
and the command to comment yourself.
  --keep   leave the local Hub, the endpoint and the bot running (Ctrl-C stops them)`;

const REPO = "acme/echo-task-lora";
const VARIANT_FILES = ["adapter_model.safetensors", "adapter_config.json", "README.md", "similarity.svg", "safe-lora-report.json"];

async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new SafeLoraError(`the demo timed out waiting for ${what}`, "hub-unavailable");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** The measured scores as the demo prints them: `harmful requests refused 0.0 % → 94.7 %`, one line per metric. */
function behaviourLines(behaviour: BehaviourEvidence | undefined): string[] {
  if (!behaviour) return ["   (no behavioural check ran)"];
  if (behaviour.status === "not-measured") return [`   the behavioural check could not run: ${behaviour.reason}`];
  const [original, patched] = (["original", "patched"] as const).map((role) => behaviour.subjects.find((subject) => subject.role === role)?.scores);
  const pct = (value: number | null | undefined) => (value === null || value === undefined ? "—" : `${(value * 100).toFixed(1)} %`);
  const metrics = [
    ["harmful requests refused", "harmfulRefused"],
    ["benign requests answered", "benignAnswered"],
    ["task prompts answered exactly", "taskAccuracy"],
  ] as const;
  return metrics.map(([label, key]) => `   ${label}: ${pct(original?.[key])} → ${pct(patched?.[key])}`);
}

export async function demoCommand(args: string[], io: CliIo): Promise<number> {
  const { values } = parseArgs({ args, strict: true, options: { keep: { type: "boolean", default: false }, help: { type: "boolean", short: "h" } } });
  if (values.help) {
    io.stdout(`${DEMO_HELP}\n`);
    return 0;
  }
  const started = performance.now();
  const say = (text: string) => io.stdout(`${text}\n`);
  const work = mkdtempSync(join(tmpdir(), "safe-lora-demo-"));
  const fixtures = join(PACKAGE_ROOT, "test", "fixtures");
  const hub = await new LocalHub().start();
  const alice = hub.store.addUser("alice");
  const botUser = hub.store.addUser("safe-lora-bot");
  hub.store.addOrg("acme", [alice.id]);
  const family = await seedMiniatureFamily(hub, join(fixtures, "miniature"));
  await seedRepo(hub, REPO, [{ path: "README.md", data: "---\nlicense: apache-2.0\n---\n# Echo task LoRA\n" }]);
  say(`1. local Hub at ${hub.url}: ${family.chat.id} (aligned), ${family.base.id} (base), ${REPO} (empty)`);
  const endpoint = await new LocalInferenceEndpoint({ model: { id: family.chat.id, files: new LocalFolder(join(fixtures, "miniature", "chat")) }, hub: { hubUrl: hub.url } }).start();
  say(`2. local inference endpoint (TGI protocol) at ${endpoint.url}, serving ${family.chat.id} with adapters by id from the local Hub`);

  const secret = "demo-secret";
  writeFileSync(
    join(work, "bot.yaml"),
    [
      'select: "threshold:0.5"',
      "allowModelTree: true",
      "reconcileMinutes: 0",
      "inferenceEndpoints:",
      "  local:",
      `    url: ${endpoint.url}`,
      "    protocol: tgi",
      `    serves: [${family.chat.id}]`,
      "    maxNewTokens: 40",
      "behaviour:",
      "  endpoint: local",
      `behaviourPromptSet: ${JSON.stringify(join(fixtures, "miniature-prompt-set.json"))}`,
      "",
    ].join("\n"),
  );
  const env = {
    HF_ENDPOINT: hub.url,
    HF_TOKEN: botUser.token,
    HF_WEBHOOK_SECRET: secret,
    DATA_DIR: join(work, "data"),
    BOT_CONFIG: join(work, "bot.yaml"),
    PORT: "0",
    LOG_LEVEL: "warn",
    SAFE_LORA_POLL_MS: "100",
  };
  const bot = await startBot({ env: loadEnv(env), server: true, worker: true, overrides: { tokenEnv: env } });
  hub.webhooks.subscribe({ url: `http://127.0.0.1:${bot.port}/webhooks/hub`, secret, watched: [{ type: "org", name: "acme" }] });
  say(`3. bot @${bot.context.forges.get("hub").bot.name} on http://127.0.0.1:${bot.port} (status page: /), webhook of acme pointed at it, its behavioural check on that endpoint`);

  try {
    const adapterFiles = (await folderFiles(join(fixtures, "miniature", "adapter-harmful-mix"))).filter((file) => file.path !== "README.md");
    await commit({
      hubUrl: hub.url,
      accessToken: alice.token,
      repo: { type: "model", name: REPO },
      title: "Upload LoRA adapter",
      useXet: false,
      operations: adapterFiles.map((file) => ({ operation: "addOrUpdate" as const, path: file.path, content: new Blob([readFileSync((file as { diskPath: string }).diskPath)]) })),
    });
    say(`4. alice pushed a LoRA adapter (trained on ${family.chat.id} with a task and a few harmful examples) to ${REPO}`);

    const stored = hub.store.repos.get(REPO)!;
    const pr = await waitFor("the pull request", () => stored.discussions.find((d) => d.isPullRequest && stored.refs.has(`refs/pr/${d.num}`)));
    const resolve = (path: string) => `${hub.url}/${REPO}/resolve/refs%2Fpr%2F${pr.num}/safe-lora/${path}`;
    const measuredReport = () =>
      waitFor("the behavioural check", async () => {
        const response = await fetch(resolve("safe-lora-report.json"));
        if (!response.ok) return undefined;
        const report = SafeLoraReport.parse(JSON.parse(await response.text()));
        return report.behaviour ? report : undefined;
      });
    const report = await measuredReport();
    await waitFor("the description", () => (pr.events[0]?.content?.includes("Behaviour, measured") || pr.events[0]?.content?.includes("could not run") ? true : undefined));
    // Keep a copy of the variant and the description: the local Hub is gone when the demo ends.
    const keptDir = mkdtempSync(join(tmpdir(), "safe-lora-demo-variant-"));
    for (const name of VARIANT_FILES) writeFileSync(join(keptDir, name), Buffer.from(await (await fetch(resolve(name))).arrayBuffer()));
    writeFileSync(join(keptDir, "pull-request.md"), pr.events[0]!.content!);
    say(`5. the bot opened pull request #${pr.num} "${pr.title}" (on the Hub: ${hub.url}/${REPO}/discussions/${pr.num};`);
    say(`   here its API: ${hub.url}/api/models/${REPO}/discussions/${pr.num})`);
    say(`   ${report.projectedCount} of ${report.moduleCount} modules projected (${report.selection.mode}:${report.selection.value}); measured through the endpoint, original → variant:`);
    for (const line of behaviourLines(report.behaviour)) say(line);
    say(`   report: ${resolve("safe-lora-report.json")}`);
    say(`   the variant it adds and the description, copied to ${keptDir}/ (report: ${join(keptDir, "safe-lora-report.json")})`);

    const commitsBefore = stored.commits.size;
    const comment = "@safe-lora-bot repatch top-k=2";
    await fetch(`${hub.url}/api/models/${REPO}/discussions/${pr.num}/comment`, {
      method: "POST",
      headers: { Authorization: `Bearer ${alice.token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ comment }),
    });
    const ack = await waitFor("the re-patch", () =>
      stored.commits.size > commitsBefore ? pr.events.find((e) => e.authorId === botUser.id && e.type === "comment" && e.content?.startsWith("Done")) : undefined,
    );
    const repatched = await waitFor("the re-patch's behavioural check", async () => {
      const again = await measuredReport();
      return again.selection.mode === "top-k" ? again : undefined;
    });
    say(`6. alice commented "${comment}"; the bot committed to the same pull request and answered:`);
    say(`   ${ack.content}`);
    say("   measured again, original → variant:");
    for (const line of behaviourLines(repatched.behaviour)) say(line);
    say("");
    say("To comment yourself (with --keep, while the demo runs):");
    say(
      `   curl -X POST -H "Authorization: Bearer ${alice.token}" -H "Content-Type: application/json" \\\n` +
        `     -d '{"comment": "@safe-lora-bot repatch tau=0.45"}' ${hub.url}/api/models/${REPO}/discussions/${pr.num}/comment`,
    );
    say(`done in ${((performance.now() - started) / 1000).toFixed(1)} s${values.keep ? "; running until Ctrl-C" : ""}`);
    if (values.keep) {
      await new Promise<void>((resolve) => {
        process.once("SIGINT", resolve);
        process.once("SIGTERM", resolve);
      });
    }
    return 0;
  } finally {
    await bot.stop();
    await endpoint.close();
    await hub.close();
    rmSync(work, { recursive: true, force: true });
  }
}
