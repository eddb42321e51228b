import { redactRepo } from "../bot/log-fields.js";
import type { Job } from "../queue/job-queue.js";

export const escapeHtml = (text: string) => text.replace(/[<>&"']/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;", "'": "&#39;" })[c]!);

export interface StatusPageOptions {
  /** With STATUS_TOKEN: private repos are shown; without it, their names never appear. */
  readonly authorized: boolean;
  readonly botName: string;
  /** Sent back with the form, so that only this page can post it. */
  readonly formToken: string;
  readonly prUrl: (repo: string, num: number) => string;
}

function folderOf(job: Job): string {
  const folder = (job.payload as { folder?: unknown }).folder;
  return typeof folder === "string" ? folder : "";
}

function prOf(job: Job): number | null {
  const pr = (job.result as { pr?: unknown } | null)?.pr;
  return typeof pr === "number" ? pr : null;
}

/** `GET /`: recent jobs and a form to ask for a patch, as the Hub's conversion Space offers. */
export function renderStatusPage(jobs: Job[], options: StatusPageOptions): string {
  const rows = jobs.map((job) => {
    const hidden = job.private && !options.authorized;
    const repo = hidden ? "<em>a private repo</em>" : escapeHtml(job.repo);
    const pr = prOf(job);
    const link = pr !== null && !hidden ? `<a href="${escapeHtml(options.prUrl(job.repo, pr))}">#${pr}</a>` : pr !== null ? `#${pr}` : "";
    // Errors can quote the repo's name: redact it along with the name itself.
    const error = job.error ? escapeHtml(redactRepo(job.error, job.repo, hidden)) : "";
    const when = new Date(job.createdAt).toISOString().replace("T", " ").slice(0, 19);
    return `<tr><td>${job.id}</td><td>${when}</td><td>${job.kind}</td><td class="${job.state}">${job.state}</td><td>${repo}</td><td>${hidden ? "" : escapeHtml(folderOf(job))}</td><td>${link}</td><td>${error}</td></tr>`;
  });
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Safe LoRA bot</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1f2328; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { border-bottom: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
.done { color: #1a7f37; } .failed { color: #cf222e; } .running { color: #9a6700; }
@media (prefers-color-scheme: dark) { body { background: #0d1117; color: #e6edf3; } th, td { border-color: #30363d; } a { color: #4493f8; } }
</style></head>
<body>
<h1>Safe LoRA bot <small>(@${escapeHtml(options.botName)})</small></h1>
<form method="post" action="/request">
  <input type="hidden" name="form_token" value="${escapeHtml(options.formToken)}">
  <label>Patch the LoRA adapters of a model repo: <input name="repo" placeholder="org/name" required pattern="[\\w.-]+/[\\w.-]+"></label>
  <button type="submit">Request</button>
</form>
<p>${options.authorized ? "Showing all repos." : "Private repos are not named here; present STATUS_TOKEN to see them."}</p>
<table><thead><tr><th>job</th><th>created (UTC)</th><th>kind</th><th>state</th><th>repo</th><th>folder</th><th>PR</th><th>error</th></tr></thead>
<tbody>
${rows.join("\n")}
</tbody></table>
</body></html>
`;
}
