import type { Account, Installation, Issue, IssueComment, Repo } from "./store.js";
import type { GitCommit } from "./git.js";

/** The JSON GitHub's REST API and webhooks give for each kind of object (the fields a bot reads, named as GitHub names them). */
export class Render {
  constructor(private readonly base: () => string) {}

  get api(): string {
    return this.base();
  }

  account(account: Account) {
    const api = this.base();
    return {
      login: account.login,
      id: account.id,
      node_id: Buffer.from(`${account.type}:${account.id}`).toString("base64"),
      type: account.type,
      site_admin: false,
      avatar_url: `${api}/avatars/${account.id}`,
      url: `${api}/users/${encodeURIComponent(account.login)}`,
      html_url: `${api}/${encodeURIComponent(account.login)}`,
    };
  }

  repo(repo: Repo) {
    const url = `${this.base()}/repos/${repo.fullName}`;
    return {
      id: repo.id,
      node_id: Buffer.from(`Repository:${repo.id}`).toString("base64"),
      name: repo.name,
      full_name: repo.fullName,
      private: repo.private,
      visibility: repo.private ? "private" : "public",
      owner: this.account(repo.owner),
      html_url: `${this.base()}/${repo.fullName}`,
      url,
      git_url: `${this.base()}/${repo.fullName}.git`,
      clone_url: `${this.base()}/${repo.fullName}.git`,
      fork: false,
      archived: false,
      disabled: false,
      description: null,
      default_branch: repo.defaultBranch,
      created_at: repo.createdAt,
      updated_at: repo.createdAt,
      pushed_at: repo.createdAt,
    };
  }

  installation(installation: Installation) {
    return {
      id: installation.id,
      account: this.account(installation.account),
      app_id: installation.app.id,
      app_slug: installation.app.slug,
      target_id: installation.account.id,
      target_type: installation.account.type,
      repository_selection: installation.repositorySelection,
      permissions: installation.app.permissions,
      events: installation.app.events,
      access_tokens_url: `${this.base()}/app/installations/${installation.id}/access_tokens`,
      repositories_url: `${this.base()}/installation/repositories`,
      html_url: `${this.base()}/settings/installations/${installation.id}`,
      created_at: installation.createdAt,
      updated_at: installation.createdAt,
      single_file_name: null,
      suspended_at: null,
      suspended_by: null,
    };
  }

  commit(repo: Repo, commit: GitCommit) {
    const url = `${this.base()}/repos/${repo.fullName}/git/commits/${commit.sha}`;
    return {
      sha: commit.sha,
      node_id: Buffer.from(`Commit:${commit.sha}`).toString("base64"),
      url,
      html_url: `${this.base()}/${repo.fullName}/commit/${commit.sha}`,
      author: commit.author,
      committer: commit.committer,
      tree: { sha: commit.tree, url: `${this.base()}/repos/${repo.fullName}/git/trees/${commit.tree}` },
      message: commit.message,
      parents: commit.parents.map((sha) => ({ sha, url: `${this.base()}/repos/${repo.fullName}/git/commits/${sha}`, html_url: `${this.base()}/${repo.fullName}/commit/${sha}` })),
      verification: { verified: false, reason: "unsigned", signature: null, payload: null },
    };
  }

  ref(repo: Repo, ref: string, sha: string) {
    return {
      ref,
      node_id: Buffer.from(`Ref:${repo.id}:${ref}`).toString("base64"),
      url: `${this.base()}/repos/${repo.fullName}/git/${ref}`,
      object: { sha, type: "commit", url: `${this.base()}/repos/${repo.fullName}/git/commits/${sha}` },
    };
  }

  issue(repo: Repo, issue: Issue) {
    const api = `${this.base()}/repos/${repo.fullName}`;
    return {
      id: issue.id,
      node_id: Buffer.from(`Issue:${issue.id}`).toString("base64"),
      number: issue.number,
      title: issue.title,
      body: issue.body,
      state: issue.state,
      user: this.account(issue.user),
      labels: [],
      assignee: null,
      assignees: [],
      milestone: null,
      locked: false,
      repository_url: api,
      comments: repo.comments.filter((c) => c.issueNumber === issue.number).length,
      url: `${api}/issues/${issue.number}`,
      html_url: `${this.base()}/${repo.fullName}/${issue.pull ? "pull" : "issues"}/${issue.number}`,
      comments_url: `${api}/issues/${issue.number}/comments`,
      created_at: issue.createdAt,
      updated_at: issue.updatedAt,
      closed_at: issue.closedAt,
      // GitHub names who closed an issue on the issue itself (not in lists); the bot reads it to tell its own closes.
      closed_by: issue.closedBy ? this.account(issue.closedBy) : null,
      author_association: "NONE",
      ...(issue.pull ? { pull_request: { url: `${api}/pulls/${issue.number}`, html_url: `${this.base()}/${repo.fullName}/pull/${issue.number}`, merged_at: null } } : {}),
    };
  }

  pull(repo: Repo, issue: Issue) {
    const pull = issue.pull!;
    const api = `${this.base()}/repos/${repo.fullName}`;
    const side = (ref: string, sha: string) => ({ label: `${repo.owner.login}:${ref}`, ref, sha, user: this.account(repo.owner), repo: this.repo(repo) });
    const headSha = repo.refs.get(`refs/pull/${issue.number}/head`)!;
    return {
      ...this.issue(repo, issue),
      url: `${api}/pulls/${issue.number}`,
      issue_url: `${api}/issues/${issue.number}`,
      diff_url: `${this.base()}/${repo.fullName}/pull/${issue.number}.diff`,
      draft: pull.draft,
      commits_url: `${api}/pulls/${issue.number}/commits`,
      requested_reviewers: [],
      merge_commit_sha: null,
      merged: false,
      merged_at: null,
      mergeable: null,
      head: side(pull.head, headSha),
      base: side(pull.base, repo.refs.get(`refs/heads/${pull.base}`) ?? headSha),
      pull_request: undefined,
    };
  }

  comment(repo: Repo, comment: IssueComment) {
    const api = `${this.base()}/repos/${repo.fullName}`;
    const counts: Record<string, number> = { "+1": 0, "-1": 0, laugh: 0, hooray: 0, confused: 0, heart: 0, rocket: 0, eyes: 0 };
    for (const reaction of comment.reactions) counts[reaction.content] = (counts[reaction.content] ?? 0) + 1;
    return {
      id: comment.id,
      node_id: Buffer.from(`IssueComment:${comment.id}`).toString("base64"),
      url: `${api}/issues/comments/${comment.id}`,
      html_url: `${this.base()}/${repo.fullName}/issues/${comment.issueNumber}#issuecomment-${comment.id}`,
      issue_url: `${api}/issues/${comment.issueNumber}`,
      body: comment.body,
      user: this.account(comment.user),
      created_at: comment.createdAt,
      updated_at: comment.updatedAt,
      author_association: "NONE",
      reactions: { url: `${api}/issues/comments/${comment.id}/reactions`, total_count: comment.reactions.length, ...counts },
    };
  }
}
