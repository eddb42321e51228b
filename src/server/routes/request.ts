import type { IncomingMessage } from "node:http";
import { z } from "zod";
import { coversRepo } from "../../bot/coverage.js";
import { scanJobFor } from "../../bot/scan-job.js";
import { isRepoId } from "../../hub/repo-ref.js";
import { HTML, readBody, sameSecret, send } from "../http.js";
import type { Route, RouteDeps } from "../route.js";
import { escapeHtml } from "../status-page.js";

const RequestForm = z.object({ repo: z.string().trim().max(200).refine(isRepoId, "a Hub model id like org/name"), form_token: z.string().max(200) });

/**
 * A browser tells where a form post came from; one from another site is refused, so a page elsewhere cannot
 * make a visitor's browser (which may hold STATUS_TOKEN in a bookmarked URL) post requests.
 */
function crossSite(request: IncomingMessage): boolean {
  const site = request.headers["sec-fetch-site"];
  if (site !== undefined) return site !== "same-origin" && site !== "none";
  const origin = request.headers.origin;
  if (origin === undefined || origin === "null") return origin === "null";
  try {
    return new URL(origin).host !== request.headers.host;
  } catch {
    return true;
  }
}

const html = (text: string) => `<p>${text} <a href="/">Back</a></p>`;

/** POST /request: the status page's form, which queues a scan of one repo the bot covers. */
export function requestRoute({ context, options, formToken, isOperator }: RouteDeps): Route {
  return {
    method: "POST",
    path: "/request",
    async handle(request, response, url) {
      if (crossSite(request)) return send(response, 403, html("Requests are taken only from this bot's own status page."), HTML);
      const form = new URLSearchParams((await readBody(request)).toString("utf8"));
      const parsed = RequestForm.safeParse({ repo: form.get("repo") ?? "", form_token: form.get("form_token") ?? "" });
      if (!parsed.success) return send(response, 400, html("Not a repo id: use a Hub model id like org/name."), HTML);
      if (!sameSecret(parsed.data.form_token, formToken)) return send(response, 403, html("The form has expired: reload the status page and send it again."), HTML);
      const { repo } = parsed.data;
      const operator = isOperator(request, url);
      if (!operator && !(await coversRepo(context, { forge: "hub", repo }))) {
        return send(response, 403, html("This bot works only for repos of organisations and users that installed its webhook (or that its operator watches); it will not act on this one. Its owner can install the webhook: see the bot's README."), HTML);
      }
      const head = await context.forges.get("hub").head(repo).catch(() => null);
      if (!head || (head.private && !operator)) {
        return send(response, 404, html(`No model repo ${escapeHtml(repo)} that this bot can see.`), HTML);
      }
      await context.queue.enqueue(scanJobFor({ forge: "hub", repo: head.repo, sha: head.sha, private: head.private, reason: "request" }));
      options.onJob?.();
      response.writeHead(303, { Location: "/" }).end();
    },
  };
}
