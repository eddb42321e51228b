import { commit } from "@huggingface/hub";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startBot } from "../app/start-bot.js";
import { loadEnv } from "../config/env.js";
import { SafeLoraError } from "../errors.js";
import { LocalHub } from "../local-hub/server.js";
import { folderFiles, seedReferencePair, seedRepo } from "../local-hub/seed.js";
import { PACKAGE_ROOT } from "../version.js";
import type { CliIo } from "./io.js";

export const DEMO_HELP = `Usage: safe-lora demo [--keep]     (same as npm run demo)

Runs the whole bot offline: a local Hub with the project's tiny reference models, the bot pointed at it,
an adapter pushed by an organisation member, the pull request the bot opens, and a re-patch asked for in a
comment. Prints the pull request, the report and the command to comment yourself.
  --keep   leave the local Hub and the bot running (Ctrl-C stops them)`;

const CASE = "llama-gqa-qv";

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 50_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new SafeLoraError(`the demo timed out waiting for ${what}`, "hub-unavailable");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
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
  const hub = await new LocalHub().start();
  const alice = hub.store.addUser("alice");
  const botUser = hub.store.addUser("safe-lora-bot");
  hub.store.addOrg("acme", [alice.id]);
  const fixtures = join(PACKAGE_ROOT, "test", "fixtures", "golden");
  const pair = await seedReferencePair(hub, fixtures, CASE);
  const repo = "acme/dialog-summary-lora";
  await seedRepo(hub, repo, [{ path: "README.md", data: "---\nlicense: apache-2.0\n---\n# Dialog summary LoRA\n" }]);
  say(`1. local Hub at ${hub.url}: ${pair.chat} (aligned), ${pair.base} (base), ${repo} (empty)`);

  const secret = "demo-secret";
  writeFileSync(join(work, "bot.yaml"), 'select: "threshold:0.33"\nallowModelTree: true\nreconcileMinutes: 0\n');
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
  say(`2. bot @${bot.context.forges.get("hub").bot.name} on http://127.0.0.1:${bot.port} (status page: /), webhook of acme pointed at it`);

  try {
    const adapterFiles = (await folderFiles(join(fixtures, CASE, "adapter"))).filter((file) => file.path !== "README.md");
    await commit({
      hubUrl: hub.url,
      accessToken: alice.token,
      repo: { type: "model", name: repo },
      title: "Upload LoRA adapter",
      useXet: false,
      operations: adapterFiles.map((file) => ({ operation: "addOrUpdate" as const, path: file.path, content: new Blob([readFileSync((file as { diskPath: string }).diskPath)]) })),
    });
    say(`3. alice pushed a LoRA adapter (trained on ${pair.chat}) to ${repo}`);

    const stored = hub.store.repos.get(repo)!;
    const pr = await waitFor("the pull request", () => stored.discussions.find((d) => d.isPullRequest && stored.refs.has(`refs/pr/${d.num}`)));
    const described = await waitFor("the description", () => (pr.events[0]?.content?.includes(`refs/pr/${pr.num}`) ? true : undefined));
    void described;
    const reportUrl = `${hub.url}/${repo}/resolve/refs%2Fpr%2F${pr.num}/safe-lora/safe-lora-report.json`;
    const report = JSON.parse(await (await fetch(reportUrl)).text()) as { projectedCount: number; moduleCount: number; selection: { mode: string; value: number } };
    // Keep a copy of the variant the pull request adds: the local Hub is gone when the demo ends.
    const keptDir = mkdtempSync(join(tmpdir(), "safe-lora-demo-variant-"));
    for (const name of ["adapter_model.safetensors", "adapter_config.json", "README.md", "similarity.svg", "safe-lora-report.json"]) {
      const response = await fetch(`${hub.url}/${repo}/resolve/refs%2Fpr%2F${pr.num}/safe-lora/${name}`);
      writeFileSync(join(keptDir, name), Buffer.from(await response.arrayBuffer()));
    }
    say(`4. the bot opened pull request #${pr.num} "${pr.title}" (on the Hub: ${hub.url}/${repo}/discussions/${pr.num};`);
    say(`   here its API: ${hub.url}/api/models/${repo}/discussions/${pr.num})`);
    say(`   ${report.projectedCount} of ${report.moduleCount} modules projected (${report.selection.mode}:${report.selection.value})`);
    say(`   report: ${reportUrl}`);
    say(`   the variant it adds, copied to ${keptDir}/ (report: ${join(keptDir, "safe-lora-report.json")})`);

    const commitsBefore = stored.commits.size;
    const comment = "@safe-lora-bot repatch tau=0.5";
    await fetch(`${hub.url}/api/models/${repo}/discussions/${pr.num}/comment`, {
      method: "POST",
      headers: { Authorization: `Bearer ${alice.token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ comment }),
    });
    const ack = await waitFor("the re-patch", () =>
      stored.commits.size > commitsBefore ? pr.events.find((e) => e.authorId === botUser.id && e.type === "comment" && e.content?.startsWith("Done")) : undefined,
    );
    say(`5. alice commented "${comment}"; the bot committed to the same pull request and answered:`);
    say(`   ${ack.content}`);
    say("");
    say("To comment yourself (with --keep, while the demo runs):");
    say(
      `   curl -X POST -H "Authorization: Bearer ${alice.token}" -H "Content-Type: application/json" \\\n` +
        `     -d '{"comment": "@safe-lora-bot repatch top-k=3"}' ${hub.url}/api/models/${repo}/discussions/${pr.num}/comment`,
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
    await hub.close();
    rmSync(work, { recursive: true, force: true });
  }
}
