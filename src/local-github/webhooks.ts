import { createHmac, randomUUID } from "node:crypto";
import type { Render } from "./render.js";
import { ZERO_SHA, type GitHubAppRecord, type GitHubStore, type Installation, type Repo, type StoreEvent } from "./store.js";

export interface GitHubDelivery {
  /** X-GitHub-Delivery. */
  readonly guid: string;
  readonly app: GitHubAppRecord;
  /** X-GitHub-Event. */
  readonly event: string;
  readonly payload: Record<string, unknown>;
  status: number | "failed" | "pending";
}

/**
 * Sends GitHub-shaped deliveries to each App's webhook URL for the events on repos it is installed on
 * (and for its own installation events), one at a time in order, signed with X-Hub-Signature-256.
 */
export class GitHubWebhooks {
  readonly deliveries: GitHubDelivery[] = [];
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly store: GitHubStore,
    private readonly render: Render,
  ) {}

  /** Points an App's webhook at `url`, signed with `secret`. */
  subscribe(app: GitHubAppRecord, url: string, secret: string): void {
    app.webhook = { url, secret };
  }

  /** Resolves once every delivery queued so far has been answered (or failed). */
  settled(): Promise<void> {
    return this.queue;
  }

  emit(event: StoreEvent): void {
    if (event.kind === "installation" || event.kind === "installation_repositories") {
      this.queueDelivery(event.installation.app, event.kind, this.installationPayload(event));
      return;
    }
    for (const installation of this.store.installations.values()) {
      if (!installation.app.events.includes(event.kind) || !this.store.installationRepos(installation).includes(event.repo)) continue;
      const payload = { ...this.repoPayload(event), repository: this.render.repo(event.repo), sender: this.render.account(event.sender), installation: this.installationRef(installation) };
      this.queueDelivery(installation.app, event.kind, payload);
    }
  }

  private installationRef(installation: Installation) {
    return { id: installation.id, node_id: Buffer.from(`Installation:${installation.id}`).toString("base64") };
  }

  private installationPayload(event: Extract<StoreEvent, { kind: "installation" | "installation_repositories" }>): Record<string, unknown> {
    const short = (repo: Repo) => ({ id: repo.id, node_id: this.render.repo(repo).node_id, name: repo.name, full_name: repo.fullName, private: repo.private });
    const installation = this.render.installation(event.installation);
    const sender = this.render.account(event.sender);
    if (event.kind === "installation") {
      return { action: event.action, installation, repositories: this.store.installationRepos(event.installation).map(short), requester: null, sender };
    }
    return {
      action: event.action,
      installation,
      repository_selection: event.installation.repositorySelection,
      repositories_added: event.action === "added" ? event.repos.map(short) : [],
      repositories_removed: event.action === "removed" ? event.repos.map(short) : [],
      requester: null,
      sender,
    };
  }

  private repoPayload(event: Exclude<StoreEvent, { kind: "installation" | "installation_repositories" }>): Record<string, unknown> {
    const { repo } = event;
    switch (event.kind) {
      case "push": {
        const commits = event.after ? this.pushedCommits(repo, event.ref, event.before, event.after) : [];
        return {
          ref: event.ref,
          before: event.before ?? ZERO_SHA,
          after: event.after ?? ZERO_SHA,
          created: event.before === null,
          deleted: event.after === null,
          forced: event.forced,
          base_ref: null,
          compare: `${this.render.api}/${repo.fullName}/compare/${(event.before ?? ZERO_SHA).slice(0, 12)}...${(event.after ?? ZERO_SHA).slice(0, 12)}`,
          commits,
          head_commit: commits.at(-1) ?? null,
          pusher: { name: event.sender.login, email: `${event.sender.id}+${event.sender.login}@users.noreply.github.com` },
        };
      }
      case "issue_comment":
        return { action: event.action, issue: this.render.issue(repo, event.issue), comment: this.render.comment(repo, event.comment) };
      case "issues":
        return { action: event.action, issue: this.render.issue(repo, event.issue) };
      case "pull_request":
        return {
          action: event.action,
          number: event.issue.number,
          pull_request: this.render.pull(repo, event.issue),
          ...(event.action === "synchronize" ? { before: event.before ?? ZERO_SHA, after: repo.refs.get(`refs/pull/${event.issue.number}/head`) } : {}),
        };
    }
  }

  /**
   * The commits a push brought, oldest first, by first parents from `after` back to `before` (at most 20, as
   * GitHub); for a new branch, back to the first commit another branch already has.
   */
  private pushedCommits(repo: Repo, ref: string, before: string | null, after: string) {
    const others = [...repo.refs].filter(([name]) => name.startsWith("refs/heads/") && name !== ref).map(([, sha]) => sha);
    const known = (sha: string) => sha === before || (before === null && others.some((head) => repo.git.isAncestor(sha, head)));
    const shas: string[] = [];
    for (let sha: string | undefined = after; sha && !known(sha) && shas.length < 20; sha = repo.git.commits.get(sha)?.parents[0]) shas.unshift(sha);
    return shas.map((sha) => {
      const commit = repo.git.commits.get(sha)!;
      const changes = this.store.commitChanges(repo, sha);
      return {
        id: sha,
        tree_id: commit.tree,
        distinct: true,
        message: commit.message,
        timestamp: commit.committer.date,
        url: `${this.render.api}/${repo.fullName}/commit/${sha}`,
        author: { name: commit.author.name, email: commit.author.email, username: commit.author.name },
        committer: { name: commit.committer.name, email: commit.committer.email, username: commit.committer.name },
        ...changes,
      };
    });
  }

  private queueDelivery(app: GitHubAppRecord, event: string, payload: Record<string, unknown>): void {
    if (!app.webhook) return;
    const delivery: GitHubDelivery = { guid: randomUUID(), app, event, payload, status: "pending" };
    this.deliveries.push(delivery);
    this.queue = this.queue.then(async () => {
      delivery.status = await this.deliver(delivery);
    });
  }

  private async deliver(delivery: GitHubDelivery): Promise<number | "failed"> {
    const webhook = delivery.app.webhook;
    if (!webhook) return "failed";
    const body = JSON.stringify(delivery.payload);
    try {
      const response = await fetch(webhook.url, {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          "User-Agent": "GitHub-Hookshot/local-github",
          "X-GitHub-Event": delivery.event,
          "X-GitHub-Delivery": delivery.guid,
          "X-GitHub-Hook-ID": String(delivery.app.id),
          "X-GitHub-Hook-Installation-Target-ID": String(delivery.app.id),
          "X-GitHub-Hook-Installation-Target-Type": "integration",
          "X-Hub-Signature": `sha1=${createHmac("sha1", webhook.secret).update(body).digest("hex")}`,
          "X-Hub-Signature-256": `sha256=${createHmac("sha256", webhook.secret).update(body).digest("hex")}`,
        },
        body,
        signal: AbortSignal.timeout(30_000),
      });
      await response.arrayBuffer();
      return response.status;
    } catch {
      return "failed";
    }
  }

  /** Sends a recorded delivery again (GitHub's "Redeliver"), with the same guid. */
  redeliver(delivery: GitHubDelivery): Promise<number | "failed"> {
    return this.deliver(delivery);
  }
}
