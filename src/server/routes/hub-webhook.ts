import { acceptEvent } from "../../bot/intake.js";
import { parseHubEvent } from "../../hub/hub-webhook.js";
import { BodyTooLarge, readBody, sameSecret, send, sendTooLarge } from "../http.js";
import type { Route, RouteDeps } from "../route.js";

/**
 * POST /webhooks/hub: checks the secret (401 missing, 403 wrong), parses the payload with the Hub's schema and
 * translates it into a forge event (src/hub/hub-webhook.ts), and hands that to the bot's intake, which stores
 * the job before the answer goes out.
 */
export function hubWebhookRoute({ context, options }: RouteDeps): Route {
  return {
    method: "POST",
    path: "/webhooks/hub",
    async handle(request, response) {
      const given = request.headers["x-webhook-secret"];
      if (typeof given !== "string" || given === "") {
        context.metrics.webhooks.inc({ outcome: "unauthorized" });
        return send(response, 401, { error: "missing X-Webhook-Secret" });
      }
      if (!sameSecret(given, options.webhookSecret)) {
        context.metrics.webhooks.inc({ outcome: "forbidden" });
        return send(response, 403, { error: "wrong X-Webhook-Secret" });
      }
      let json: unknown;
      try {
        json = JSON.parse((await readBody(request)).toString("utf8"));
      } catch (error) {
        context.metrics.webhooks.inc({ outcome: "malformed" });
        if (error instanceof BodyTooLarge) return sendTooLarge(response);
        return send(response, 400, { error: "payload is not JSON" });
      }
      const parsed = parseHubEvent(json);
      if (!parsed.ok) {
        context.metrics.webhooks.inc({ outcome: "malformed" });
        return send(response, 400, { error: `not a Hub webhook payload (version 3): ${parsed.reason}` });
      }
      let result: Awaited<ReturnType<typeof acceptEvent>>;
      try {
        result = await acceptEvent(context, parsed.event);
      } catch (error) {
        // Nothing stored (the queue's database or Redis is away): 503, so that the Hub delivers the event again.
        context.metrics.webhooks.inc({ outcome: "unavailable" });
        context.log.error({ err: error }, "could not store the webhook's job; answered 503 for the Hub to deliver it again");
        return send(response, 503, { error: "the bot cannot store jobs right now; deliver this webhook again later" });
      }
      context.metrics.webhooks.inc({ outcome: result.outcome });
      if (result.outcome === "accepted") options.onJob?.();
      send(response, result.outcome === "accepted" ? 202 : 200, result);
    },
  };
}
