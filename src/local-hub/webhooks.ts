import type { Discussion, DiscussionEvent, HubStore, Repo } from "./store.js";
import { objectId } from "./store.js";

/** A webhook as configured in the Hub's settings: where to POST, its secret, what it watches. */
export interface WebhookSubscription {
  readonly id: string;
  readonly url: string;
  readonly secret: string;
  /** Repos watched directly, or every repo of a user or organisation. */
  readonly watched: ReadonlyArray<{ type: "model" | "user" | "org"; name: string }>;
  readonly domains: ReadonlyArray<"repo" | "discussion">;
}

export interface Delivery {
  readonly webhookId: string;
  readonly payload: Record<string, unknown>;
  status: number | "failed" | "pending";
}

export type WebhookEvent =
  | { scope: "repo.content"; action: "update"; updatedRefs: Array<{ ref: string; oldSha: string | null; newSha: string }> }
  | { scope: "repo"; action: "delete" }
  | { scope: "discussion"; action: "create" | "update" | "delete"; discussion: Discussion; comment?: DiscussionEvent }
  | { scope: "discussion.comment"; action: "create" | "update"; discussion: Discussion; comment: DiscussionEvent };

/**
 * Builds version-3 payloads in the shapes of the Hub's webhook documentation (and of the recorded and
 * documented samples in test/fixtures/hub-payloads/), and delivers them one at a time in order, as POSTs with
 * the secret in `X-Webhook-Secret`.
 */
export class WebhookDispatcher {
  readonly subscriptions: WebhookSubscription[] = [];
  readonly deliveries: Delivery[] = [];
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: HubStore,
    private readonly baseUrl: () => string,
  ) {}

  subscribe(subscription: Omit<WebhookSubscription, "id" | "domains"> & { domains?: WebhookSubscription["domains"] }): WebhookSubscription {
    const full = { id: objectId(), domains: ["repo", "discussion"] as const, ...subscription };
    this.subscriptions.push(full);
    return full;
  }

  /** Resolves once every delivery queued so far has been answered (or failed). */
  settled(): Promise<void> {
    return this.queue;
  }

  private watches(subscription: WebhookSubscription, repo: Repo): boolean {
    const owner = this.store.ownerName(repo);
    return subscription.watched.some((watch) => (watch.type === "model" ? watch.name === repo.name : watch.name === owner));
  }

  private repoJson(repo: Repo, headSha?: string) {
    const base = this.baseUrl();
    return {
      type: repo.type,
      name: repo.name,
      id: repo.id,
      private: repo.private,
      url: { web: `${base}/${repo.name}`, api: `${base}/api/models/${repo.name}` },
      ...(headSha ? { headSha } : {}),
      owner: { id: repo.ownerId },
    };
  }

  private discussionJson(repo: Repo, discussion: Discussion) {
    const base = this.baseUrl();
    return {
      id: discussion.id,
      title: discussion.title,
      status: discussion.status,
      num: discussion.num,
      isPullRequest: discussion.isPullRequest,
      url: { web: `${base}/${repo.name}/discussions/${discussion.num}`, api: `${base}/api/models/${repo.name}/discussions/${discussion.num}` },
      author: { id: discussion.authorId },
      ...(discussion.isPullRequest ? { changes: { base: "refs/heads/main" } } : {}),
    };
  }

  private commentJson(repo: Repo, discussion: Discussion, comment: DiscussionEvent) {
    return {
      id: comment.id,
      author: { id: comment.authorId },
      content: comment.content ?? "",
      hidden: comment.hidden ?? false,
      url: { web: `${this.baseUrl()}/${repo.name}/discussions/${discussion.num}#${comment.id}` },
    };
  }

  payload(repo: Repo, event: WebhookEvent, webhookId: string): Record<string, unknown> {
    const common = { event: { action: event.action, scope: event.scope } };
    const webhook = { id: webhookId, version: 3 };
    switch (event.scope) {
      case "repo.content": {
        const head = repo.refs.get("refs/heads/main");
        return { ...common, repo: this.repoJson(repo, head), webhook, updatedRefs: event.updatedRefs };
      }
      case "repo":
        return { ...common, repo: this.repoJson(repo), webhook };
      case "discussion":
      case "discussion.comment":
        return {
          ...common,
          repo: this.repoJson(repo),
          discussion: this.discussionJson(repo, event.discussion),
          ...(event.comment ? { comment: this.commentJson(repo, event.discussion, event.comment) } : {}),
          webhook,
        };
    }
  }

  /** Queues the event for every subscription watching the repo. */
  emit(repo: Repo, event: WebhookEvent): void {
    const domain = event.scope.startsWith("discussion") ? "discussion" : "repo";
    for (const subscription of this.subscriptions) {
      if (!subscription.domains.includes(domain) || !this.watches(subscription, repo)) continue;
      const delivery: Delivery = { webhookId: subscription.id, payload: this.payload(repo, event, subscription.id), status: "pending" };
      this.deliveries.push(delivery);
      this.queue = this.queue.then(async () => {
        delivery.status = await this.deliver(subscription, delivery.payload);
      });
    }
  }

  private async deliver(subscription: WebhookSubscription, payload: Record<string, unknown>): Promise<number | "failed"> {
    try {
      const response = await fetch(subscription.url, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Webhook-Secret": subscription.secret },
        body: JSON.stringify(payload),
        signal: AbortSignal.timeout(30_000),
      });
      await response.arrayBuffer();
      return response.status;
    } catch {
      return "failed";
    }
  }

  /** Sends a recorded delivery again, as the Hub's "replay" button does. */
  replay(delivery: Delivery): Promise<number | "failed"> {
    const subscription = this.subscriptions.find((s) => s.id === delivery.webhookId);
    return subscription ? this.deliver(subscription, delivery.payload) : Promise.resolve("failed");
  }
}
