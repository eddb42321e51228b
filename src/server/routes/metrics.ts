import { send } from "../http.js";
import type { Route, RouteDeps } from "../route.js";

/** GET /metrics: the Prometheus metrics (counts only, never a repo name). */
export function metricsRoute({ context }: RouteDeps): Route {
  return {
    method: "GET",
    path: "/metrics",
    async handle(_request, response) {
      send(response, 200, await context.metrics.registry.metrics(), context.metrics.registry.contentType);
    },
  };
}
