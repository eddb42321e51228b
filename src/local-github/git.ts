import { createHash } from "node:crypto";
import { gitBlobOid } from "../local-hub/store.js";

/** One entry of a git tree object, as GitHub's git data API names its fields. */
export interface TreeEntry {
  readonly path: string;
  readonly mode: "100644" | "100755" | "040000";
  readonly type: "blob" | "tree";
  readonly sha: string;
}

export interface GitCommit {
  readonly sha: string;
  readonly tree: string;
  readonly parents: readonly string[];
  readonly message: string;
  readonly author: { name: string; email: string; date: string };
  readonly committer: { name: string; email: string; date: string };
}

/** A flattened tree: every blob's full path with its mode and id. */
export type FlatTree = Map<string, { mode: "100644" | "100755"; sha: string }>;

/** The content-addressed objects of one repository; ids are real git object ids, so they look like GitHub's. */
export class GitObjects {
  readonly blobs = new Map<string, Buffer>();
  readonly trees = new Map<string, TreeEntry[]>();
  readonly commits = new Map<string, GitCommit>();

  constructor() {
    this.writeTree([]);
  }

  writeBlob(content: Buffer): string {
    const sha = gitBlobOid(content);
    this.blobs.set(sha, content);
    return sha;
  }

  /** Stores a tree object (entries named, not pathed) and returns its id as git computes it. */
  writeTree(entries: TreeEntry[]): string {
    // git orders entries by name, a subtree as if its name ended in "/".
    const key = (entry: TreeEntry) => (entry.type === "tree" ? `${entry.path}/` : entry.path);
    const sorted = [...entries].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
    const body = Buffer.concat(sorted.map((entry) => Buffer.concat([Buffer.from(`${entry.mode === "040000" ? "40000" : entry.mode} ${entry.path}\0`), Buffer.from(entry.sha, "hex")])));
    const sha = createHash("sha1").update(`tree ${body.byteLength}\0`).update(body).digest("hex");
    this.trees.set(sha, sorted);
    return sha;
  }

  writeCommit(fields: Omit<GitCommit, "sha">): GitCommit {
    const stamp = (who: { name: string; email: string; date: string }) => `${who.name} <${who.email}> ${Math.floor(Date.parse(who.date) / 1000)} +0000`;
    const text = [`tree ${fields.tree}`, ...fields.parents.map((p) => `parent ${p}`), `author ${stamp(fields.author)}`, `committer ${stamp(fields.committer)}`, "", fields.message].join("\n");
    const sha = createHash("sha1").update(`commit ${Buffer.byteLength(text)}\0`).update(text).digest("hex");
    const commit = { sha, ...fields };
    this.commits.set(sha, commit);
    return commit;
  }

  /** Every blob below a tree, by full path. */
  flatten(treeSha: string, prefix = ""): FlatTree {
    const flat: FlatTree = new Map();
    for (const entry of this.trees.get(treeSha) ?? []) {
      const path = prefix + entry.path;
      if (entry.type === "tree") for (const [sub, value] of this.flatten(entry.sha, `${path}/`)) flat.set(sub, value);
      else flat.set(path, { mode: entry.mode as "100644" | "100755", sha: entry.sha });
    }
    return flat;
  }

  /** Writes the nested trees for a flat listing and returns the root's id. */
  buildTree(flat: FlatTree): string {
    const here: TreeEntry[] = [];
    const folders = new Map<string, FlatTree>();
    for (const [path, value] of flat) {
      const slash = path.indexOf("/");
      if (slash < 0) {
        here.push({ path, mode: value.mode, type: "blob", sha: value.sha });
        continue;
      }
      const folder = path.slice(0, slash);
      if (!folders.has(folder)) folders.set(folder, new Map());
      folders.get(folder)!.set(path.slice(slash + 1), value);
    }
    for (const [folder, sub] of folders) here.push({ path: folder, mode: "040000", type: "tree", sha: this.buildTree(sub) });
    return this.writeTree(here);
  }

  /** Every entry below a tree with full paths, trees included, as `?recursive=1` lists them. */
  walk(treeSha: string, prefix = ""): TreeEntry[] {
    return (this.trees.get(treeSha) ?? []).flatMap((entry) => {
      const full = { ...entry, path: prefix + entry.path };
      return entry.type === "tree" ? [full, ...this.walk(entry.sha, `${full.path}/`)] : [full];
    });
  }

  /** The entry at a path below a tree ("" is the root itself). */
  lookup(treeSha: string, path: string): TreeEntry | undefined {
    if (path === "") return { path: "", mode: "040000", type: "tree", sha: treeSha };
    let current: TreeEntry | undefined;
    let tree = treeSha;
    for (const part of path.split("/")) {
      current = this.trees.get(tree)?.find((entry) => entry.path === part);
      if (!current) return undefined;
      tree = current.sha;
    }
    return current;
  }

  isAncestor(ancestor: string, of: string): boolean {
    const seen = new Set<string>();
    const stack = [of];
    while (stack.length > 0) {
      const sha = stack.pop()!;
      if (sha === ancestor) return true;
      if (seen.has(sha)) continue;
      seen.add(sha);
      stack.push(...(this.commits.get(sha)?.parents ?? []));
    }
    return false;
  }

  /** The newest commit reachable from both (by first parents of `b`), or undefined. */
  mergeBase(a: string, b: string): string | undefined {
    for (let sha: string | undefined = b; sha; sha = this.commits.get(sha)?.parents[0]) if (this.isAncestor(sha, a)) return sha;
    return undefined;
  }
}

/** What changed from one flat tree to the next, in the push payload's and pull files' terms. */
export function diffTrees(before: FlatTree, after: FlatTree): { added: string[]; modified: string[]; removed: string[] } {
  const added: string[] = [];
  const modified: string[] = [];
  const removed: string[] = [];
  for (const [path, value] of after) {
    const old = before.get(path);
    if (!old) added.push(path);
    else if (old.sha !== value.sha || old.mode !== value.mode) modified.push(path);
  }
  for (const path of before.keys()) if (!after.has(path)) removed.push(path);
  return { added, modified, removed };
}
