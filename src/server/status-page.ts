import { jobOutcome, type JobOutcome } from "../bot/job-outcome.js";
import type { Job, WorkerInfo } from "../queue/job-queue.js";
import { formatBytes } from "../report/format-bytes.js";

export const escapeHtml = (text: string) => text.replace(/[<>&"']/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&#39;" })[c]!);

export interface StatusPageOptions {
  /** With STATUS_TOKEN: private repos are shown; without it, their names never appear. */
  readonly authorized: boolean;
  readonly botName: string;
  /** Sent back with the form, so that only this page can post it. */
  readonly formToken: string;
  /** Where the form posts: with STATUS_TOKEN for whoever presented it, so that the operator may ask for any repo. */
  readonly formAction: string;
  /** A link to a pull request or discussion (they share numbers on the Hub). */
  readonly prUrl: (repo: string, num: number) => string;
  /** Finished jobs of all time by outcome (no repo names): the line above the table. */
  readonly totals: Partial<Record<JobOutcome, number>>;
  /** The workers that took part recently: counted by provider for everyone, listed (host names) for the operator. */
  readonly workers: readonly WorkerInfo[];
}

/** "2 workers: cpu × 1, webgpu (GPU) × 1", and for the operator one line per worker. */
function workersSection(workers: readonly WorkerInfo[], authorized: boolean): string {
  if (workers.length === 0) return `<p class="workers">No worker has checked in during the last few minutes: jobs wait until one does (<code>npm run worker</code>, or <code>serve</code>).</p>`;
  const kinds = new Map<string, number>();
  for (const worker of workers) {
    const kind = `${worker.executionProvider}${worker.gpu ? " (GPU)" : ""}`;
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1);
  }
  const summary = `${workers.length} worker${workers.length === 1 ? "" : "s"}: ${[...kinds].map(([kind, n]) => `${escapeHtml(kind)} × ${n}`).join(", ")}`;
  if (!authorized) return `<p class="workers">${summary}.</p>`;
  // Host names and the reasons a provider did not load are the operator's, not the public's.
  const items = workers.map((worker) => {
    const notes = worker.notes && worker.notes.length > 0 ? ` — ${escapeHtml(worker.notes.join("; "))}` : "";
    const seen = new Date(worker.seenAt).toISOString().replace("T", " ").slice(11, 19);
    return `<li><code>${escapeHtml(worker.id)}</code>: ${escapeHtml(worker.executionProvider)}${worker.gpu ? " (GPU)" : ""}, ${escapeHtml(formatBytes(worker.memoryBytes))}, seen ${seen} UTC${notes}</li>`;
  });
  return `<details class="workers"><summary>${summary}</summary><ul>${items.join("")}</ul></details>`;
}

function folderOf(job: Job): string {
  const folder = (job.payload as { folder?: unknown }).folder;
  return typeof folder === "string" ? folder : "";
}

const numberField = (job: Job, field: string): number | null => {
  const value = (job.result as Record<string, unknown> | null)?.[field];
  return typeof value === "number" ? value : null;
};

const textField = (job: Job, field: string): string | null => {
  const value = (job.result as Record<string, unknown> | null)?.[field];
  return typeof value === "string" ? value : null;
};

/** The words a row shows for its outcome: what an operator scans the page for. */
const OUTCOME_LABEL: Record<JobOutcome, string> = {
  committed: "committed",
  unchanged: "unchanged",
  skipped: "skipped",
  refused: "refused",
  failed: "failed",
  done: "done",
};

/** Where to read more: the pull request it committed to, or the notice that explains a refusal. */
function linkOf(job: Job, outcome: JobOutcome | null): { num: number; label: string } | null {
  const pr = numberField(job, "pr");
  if (pr !== null) return { num: pr, label: `PR #${pr}` };
  const notice = numberField(job, "notice");
  if (notice !== null && (outcome === "refused" || outcome === "skipped")) return { num: notice, label: `notice #${notice}` };
  return null;
}

/** What the row says beyond its outcome: why it was refused, skipped or failed, or what a commit did. */
function detailOf(job: Job, outcome: JobOutcome | null): string {
  if (outcome === "committed") {
    const projected = numberField(job, "projected");
    const modules = numberField(job, "modules");
    const commit = textField(job, "commit");
    return [commit ? `commit ${commit.slice(0, 12)}` : "", projected !== null && modules !== null ? `${projected} of ${modules} modules projected` : ""].filter(Boolean).join(", ");
  }
  // A full fine-tune above the CPU's cap: it waits, by design, for a worker that advertises a GPU.
  if (outcome === null && job.state === "queued" && job.needs === "gpu" && !job.error) return "waits for a GPU worker";
  if (outcome === "failed" || outcome === null) return job.error ?? "";
  // The record is the bot's word for it; the operator wants to know why nothing was committed.
  if (outcome === "unchanged") return "the pull request already holds this variant (same adapter files, models and selection)";
  if (outcome === "done") return doneDetail(job);
  return textField(job, "reason") ?? textField(job, "skipped") ?? "";
}

/** Scans and commands: counts and the command's kind only, so a private repo's folder names stay off the page. */
function doneDetail(job: Job): string {
  const result = (job.result ?? {}) as { adapters?: unknown; finetunes?: unknown; queued?: unknown; answered?: unknown; skipped?: unknown; refused?: unknown; invalid?: unknown };
  if (job.kind === "scan" && Array.isArray(result.adapters) && Array.isArray(result.queued)) {
    const found = result.adapters.length;
    const finetunes = Array.isArray(result.finetunes) ? result.finetunes.length : 0;
    const also = finetunes > 0 ? `, ${finetunes} full ${finetunes === 1 ? "fine-tune" : "fine-tunes"}` : "";
    return `${found} adapter ${found === 1 ? "folder" : "folders"}${also}, ${result.queued.length} patch ${result.queued.length === 1 ? "job" : "jobs"} queued`;
  }
  if (typeof result.skipped === "string") return result.skipped;
  if (typeof result.answered === "string") return `answered ${result.answered}`;
  if (typeof result.queued === "string") return `queued ${result.queued}`;
  if (result.refused !== undefined) return "refused: the commenter may not command the bot";
  if (typeof result.invalid === "string") return "answered: the command was not understood";
  return "";
}

/** `GET /`: recent jobs and a form to ask for a patch, as the Hub's conversion Space offers. */
export function renderStatusPage(jobs: Job[], options: StatusPageOptions): string {
  const rows = jobs.map((job) => {
    const hidden = job.private && !options.authorized;
    const repo = hidden ? "<em>a private repo</em>" : escapeHtml(job.repo);
    const outcome = jobOutcome(job);
    const status = outcome ?? job.state;
    const target = linkOf(job, outcome);
    const link = target === null ? "" : hidden ? escapeHtml(target.label) : `<a href="${escapeHtml(options.prUrl(job.repo, target.num))}">${escapeHtml(target.label)}</a>`;
    // A private job's reasons and errors quote its folders, tensors and models: without STATUS_TOKEN only the
    // outcome and the error's code are shown, never free text.
    const code = textField(job, "code");
    const detail = hidden ? (outcome === "committed" ? escapeHtml(detailOf(job, outcome)) : code ? `code: ${escapeHtml(code)}` : "") : escapeHtml(detailOf(job, outcome));
    const when = new Date(job.createdAt).toISOString().replace("T", " ").slice(0, 19);
    const label = outcome ? OUTCOME_LABEL[outcome] : job.state;
    return `<tr><td>${escapeHtml(job.id)}</td><td>${when}</td><td>${escapeHtml(job.kind)}</td><td><span class="badge ${status}">${label}</span></td><td>${repo}</td><td>${hidden ? "" : escapeHtml(folderOf(job))}</td><td>${link}</td><td class="detail">${detail}</td></tr>`;
  });
  const totals = (["committed", "unchanged", "skipped", "refused", "failed", "done"] as const)
    .filter((outcome) => (options.totals[outcome] ?? 0) > 0)
    .map((outcome) => `<span class="badge ${outcome}">${options.totals[outcome]} ${OUTCOME_LABEL[outcome]}</span>`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Safe LoRA bot</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<style>
:root { --fg: #1f2328; --bg: #ffffff; --line: #d0d7de; --muted: #59636e; --link: #0969da;
  --green: #1a7f37; --green-bg: #dafbe1; --grey: #59636e; --grey-bg: #eaeef2; --orange: #9a4d00; --orange-bg: #fff1e5;
  --red: #d1242f; --red-bg: #ffebe9; --yellow: #7d4e00; --yellow-bg: #fff8c5; --blue: #0550ae; --blue-bg: #ddf4ff; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --bg: #0d1117; --line: #30363d; --muted: #9198a1; --link: #4493f8;
  --green: #3fb950; --green-bg: #12261e; --grey: #9198a1; --grey-bg: #212830; --orange: #f0883e; --orange-bg: #2d1d0e;
  --red: #ff7b72; --red-bg: #2d1214; --yellow: #d29922; --yellow-bg: #2b2111; --blue: #79c0ff; --blue-bg: #0c2d4b; } }
body { font-family: system-ui, sans-serif; margin: 2rem; color: var(--fg); background: var(--bg); }
a { color: var(--link); }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
td { white-space: nowrap; }
td.detail { color: var(--muted); white-space: normal; overflow-wrap: anywhere; min-width: 18em; }
.jobs { overflow-x: auto; }
.badge { display: inline-block; padding: 0 8px; border-radius: 1em; font-size: 13px; font-weight: 600; white-space: nowrap; }
.committed { color: var(--green); background: var(--green-bg); }
.unchanged, .done { color: var(--blue); background: var(--blue-bg); }
.skipped, .queued { color: var(--grey); background: var(--grey-bg); }
.refused { color: var(--orange); background: var(--orange-bg); }
.failed { color: var(--red); background: var(--red-bg); }
.running { color: var(--yellow); background: var(--yellow-bg); }
.totals .badge { margin-right: 6px; }
</style></head>
<body>
<h1>Safe LoRA bot <small>(@${escapeHtml(options.botName)})</small></h1>
<form method="post" action="${escapeHtml(options.formAction)}">
  <input type="hidden" name="form_token" value="${escapeHtml(options.formToken)}">
  <label>Patch the LoRA adapters of a model repo: <input name="repo" placeholder="org/name" required pattern="[\\w.-]+/[\\w.-]+"></label>
  <button type="submit">Request</button>
</form>
<p>${options.authorized ? "Showing all repos." : "Private repos are not named here; present STATUS_TOKEN to see them."}</p>
${totals.length > 0 ? `<p class="totals">All jobs so far: ${totals.join(" ")}</p>` : ""}
${workersSection(options.workers, options.authorized)}
<div class="jobs"><table><thead><tr><th>job</th><th>created (UTC)</th><th>kind</th><th>outcome</th><th>repo</th><th>folder</th><th>PR / notice</th><th>details</th></tr></thead>
<tbody>
${rows.join("\n")}
</tbody></table></div>
</body></html>
`;
}
