import type { IncomingMessage, ServerResponse } from "node:http";
import type { BotContext } from "../bot/context.js";

/**
 * One HTTP route: a method, an exact path and its handler. The server is a list of these, so another forge's
 * webhook receiver (Probot's `createNodeMiddleware` at `/api/github/webhooks`) mounts as one more entry.
 */
export interface Route {
  readonly method: "GET" | "POST";
  /** The exact path, without the query. */
  readonly path: string;
  /** Answers the request; a throw is logged and answered 500. `url` is the request's URL, parsed. */
  handle(request: IncomingMessage, response: ServerResponse, url: URL): Promise<void> | void;
}

export interface ServerOptions {
  readonly webhookSecret: string;
  /** Shows private repos on `/` to whoever presents it; unset: private repos are always redacted. */
  readonly statusToken: string | undefined;
  /** Called after a job is stored, so an in-process worker starts at once. */
  readonly onJob?: () => void;
  /** Routes served besides the bot's own (another forge's webhooks). */
  readonly routes?: readonly Route[];
}

/** What the bot's routes share: the context, the options, and this process's form token. */
export interface RouteDeps {
  readonly context: BotContext;
  readonly options: ServerOptions;
  /** Ties the status page's form to a page this process rendered (a per-process value: it holds no secret of anyone's). */
  readonly formToken: string;
  /** Whether the request presents STATUS_TOKEN (as a bearer token or `?token=`). */
  isOperator(request: IncomingMessage, url: URL): boolean;
}
