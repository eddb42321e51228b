import { z } from "zod";
import { isCheckpointWeightsFile } from "../safetensors/checkpoint.js";
import { payloadProblem, type ForgeEvent } from "../forge/events.js";

/**
 * GitHub webhook payloads as the bot's normalised events. Probot has checked the signature; everything here
 * that becomes part of a URL or a job is checked before anything is stored. Unknown fields are allowed: GitHub
 * adds fields, and the payloads carry far more than the bot reads.
 */

/** Owners are letters, digits and single hyphens (at most 39); names letters, digits, '.', '_', '-' (at most 100), never `.` or `..`. */
const FULL_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}\/(?!\.\.?$)[A-Za-z0-9._-]{1,100}$/;
const FullName = z.string().max(140).regex(FULL_NAME, "must be a repository's full name like owner/name");
/** SHA-1 object ids (40 hex); SHA-256 repositories (64 hex) too, should GitHub serve them. */
const Sha = z.string().regex(/^(?:[0-9a-f]{40}|[0-9a-f]{64})$/, "must be a hex commit sha");
const NO_COMMIT = /^0+$/;
const Id = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
/** GitHub caps a comment at 65,536 characters; the cap bounds what a job stores. */
const MAX_COMMENT = 65_536;
/** GitHub lists at most 2,048 commits in a push payload; a push of more may touch files the list does not show. */
export const MAX_PUSH_COMMITS = 2048;

const Account = z.looseObject({ login: z.string().min(1).max(100), id: Id, type: z.string().max(50) });
const Repository = z.looseObject({ full_name: FullName, private: z.boolean(), default_branch: z.string().min(1).max(255) });
const Installation = z.looseObject({ id: Id.positive() });
const Paths = z.array(z.string().max(4096)).max(10_000).default([]);

const PushPayload = z.looseObject({
  ref: z.string().max(1024),
  after: Sha,
  deleted: z.boolean().default(false),
  repository: Repository,
  sender: Account,
  installation: Installation.optional(),
  commits: z.array(z.looseObject({ added: Paths, modified: Paths })).max(MAX_PUSH_COMMITS).default([]),
});

const IssueCommentPayload = z.looseObject({
  action: z.string().max(50),
  issue: z.looseObject({ number: z.number().int().positive().max(1e9), pull_request: z.looseObject({}).nullish() }),
  comment: z.looseObject({ id: Id, body: z.string().max(MAX_COMMENT).nullable(), user: Account }),
  repository: Repository,
  sender: Account,
  installation: Installation.optional(),
});

const RepoList = z.array(z.looseObject({ full_name: FullName })).max(100_000);

const InstallationPayload = z.looseObject({
  action: z.string().max(50),
  installation: Installation.extend({ account: z.looseObject({ login: z.string().min(1).max(100) }).nullish() }),
  repositories: RepoList.optional(),
  sender: Account,
});

const InstallationRepositoriesPayload = z.looseObject({
  action: z.string().max(50),
  installation: Installation,
  repositories_removed: RepoList.default([]),
  repositories_added: RepoList.default([]),
  sender: Account,
});

/** Any other event (pull_request, ping, …): read only for its repository, sender and installation. */
const OtherPayload = z.looseObject({
  action: z.string().max(50).optional(),
  repository: Repository.optional(),
  sender: Account.optional(),
  installation: Installation.optional(),
});

/**
 * Files whose change on the default branch may need a new variant: a LoRA adapter's config or weights, or a full
 * fine-tune's config.json or weights, in any folder. A push touching none of them (docs, code) makes no job; the
 * scan job decides for the rest.
 */
const ADAPTER_FILES = new Set(["adapter_config.json", "adapter_model.safetensors", "adapter_model.bin", "config.json"]);
const touchesAdapter = (path: string) => {
  const name = path.slice(path.lastIndexOf("/") + 1);
  return ADAPTER_FILES.has(name) || isCheckpointWeightsFile(name);
};

export interface GithubEventOptions {
  /** The App's slug: its own events come from `<slug>[bot]`. */
  readonly appSlug: string;
}

export interface GithubEvent {
  readonly event: ForgeEvent;
  /** The installation the delivery is for (the token the forge's calls use), when the payload names one. */
  readonly installationId?: number;
  /** Repositories the App was removed from (`installation` deleted, `installation_repositories` removed): their jobs must be refused. */
  readonly removedRepos?: readonly string[];
  /** The account whose installation was deleted: none of its repositories is covered any more. */
  readonly removedOwner?: string;
  /** Repositories the App was installed on (`installation` created, `installation_repositories` added). */
  readonly addedRepos?: readonly string[];
  /** The account the App was installed on (`installation` created). */
  readonly addedOwner?: string;
}

export type ParsedGithubEvent = ({ readonly ok: true } & GithubEvent) | { readonly ok: false; readonly reason: string };


const isOwnBot = (sender: z.infer<typeof Account> | undefined, { appSlug }: GithubEventOptions) => sender?.type === "Bot" && sender.login === `${appSlug}[bot]`;

function pushEvent(payload: z.infer<typeof PushPayload>): ForgeEvent {
  const { repository } = payload;
  const repo = repository.full_name;
  const ignored = (reason: string): ForgeEvent => ({ kind: "ignored", forge: "github", repo, reason });
  const defaultRef = `refs/heads/${repository.default_branch}`;
  if (payload.ref !== defaultRef) return ignored(`not the default branch (${defaultRef})`);
  if (payload.deleted || NO_COMMIT.test(payload.after)) return ignored("the default branch was deleted");
  const listed = payload.commits.length < MAX_PUSH_COMMITS;
  if (listed && !payload.commits.some((commit) => [...commit.added, ...commit.modified].some(touchesAdapter))) {
    return ignored("no adapter or checkpoint config or weights added or modified");
  }
  return { kind: "push", forge: "github", repo, private: repository.private, sha: payload.after };
}

function commentEvent(payload: z.infer<typeof IssueCommentPayload>): ForgeEvent {
  const repo = payload.repository.full_name;
  if (payload.action !== "created") return { kind: "ignored", forge: "github", repo, reason: `comment ${payload.action}` };
  return {
    kind: "comment",
    forge: "github",
    repo,
    private: payload.repository.private,
    discussion: payload.issue.number,
    isPullRequest: payload.issue.pull_request != null,
    commentId: String(payload.comment.id),
    authorId: String(payload.comment.user.id),
    content: payload.comment.body ?? "",
    hidden: false,
  };
}

/**
 * A GitHub webhook (its `X-GitHub-Event` name and parsed JSON body) as the bot's event. A push counts when it
 * moved the default branch and touched an adapter; a comment when it was created; the App's own events never.
 * `reason` names what is malformed.
 */
export function parseGithubEvent(name: string, payload: unknown, options: GithubEventOptions): ParsedGithubEvent {
  const ignored = (reason: string, repo?: string): ForgeEvent => ({ kind: "ignored", forge: "github", reason, ...(repo ? { repo } : {}) });
  const checked = <T>(schema: z.ZodType<T>, then: (value: T) => ParsedGithubEvent): ParsedGithubEvent => {
    const parsed = schema.safeParse(payload);
    return parsed.success ? then(parsed.data) : { ok: false, reason: `${name} event: ${payloadProblem(parsed.error)}` };
  };
  const installation = (value: { installation?: { id: number } | undefined }) => (value.installation ? { installationId: value.installation.id } : {});

  switch (name) {
    case "push":
      return checked(PushPayload, (push) => ({
        ok: true,
        event: isOwnBot(push.sender, options) ? ignored("the app's own", push.repository.full_name) : pushEvent(push),
        ...installation(push),
      }));
    case "issue_comment":
      return checked(IssueCommentPayload, (comment) => ({
        ok: true,
        event: isOwnBot(comment.sender, options) || isOwnBot(comment.comment.user, options) ? ignored("the app's own", comment.repository.full_name) : commentEvent(comment),
        ...installation(comment),
      }));
    case "installation":
      return checked(InstallationPayload, (install) => {
        if (install.action === "created") {
          return {
            ok: true,
            event: ignored("installation created"),
            ...installation(install),
            addedRepos: (install.repositories ?? []).map((repo) => repo.full_name),
            ...(install.installation.account ? { addedOwner: install.installation.account.login } : {}),
          };
        }
        if (install.action !== "deleted") return { ok: true, event: ignored(`installation ${install.action}`), ...installation(install) };
        return {
          ok: true,
          event: ignored("installation removed"),
          ...installation(install),
          removedRepos: (install.repositories ?? []).map((repo) => repo.full_name),
          ...(install.installation.account ? { removedOwner: install.installation.account.login } : {}),
        };
      });
    case "installation_repositories":
      return checked(InstallationRepositoriesPayload, (change) => {
        const removedRepos = change.repositories_removed.map((repo) => repo.full_name);
        const addedRepos = change.repositories_added.map((repo) => repo.full_name);
        if (change.action === "added" && addedRepos.length > 0) return { ok: true, event: ignored("installation_repositories added"), ...installation(change), addedRepos };
        if (change.action !== "removed" || removedRepos.length === 0) return { ok: true, event: ignored(`installation_repositories ${change.action}`), ...installation(change) };
        return { ok: true, event: ignored("installation removed"), ...installation(change), removedRepos };
      });
    default:
      return checked(OtherPayload, (other) => ({
        ok: true,
        event: ignored(isOwnBot(other.sender, options) ? "the app's own" : `${name}${other.action ? ` ${other.action}` : ""}`, other.repository?.full_name),
        ...installation(other),
      }));
  }
}
