import { readdir, stat } from "node:fs/promises";
import { join, relative } from "node:path";
import { inSubfolder, REPO_ROOT } from "../storage/repo-files.js";
import type { LocalHub } from "./server.js";
import { storedFile, type Commit, type Repo, type StoredFile } from "./store.js";

/** A file to put in a seeded repo: bytes or text, or a file on disk (served from there, not copied). */
export type SeedFile = { path: string; data: Buffer | string } | { path: string; diskPath: string; sha256?: string };

async function listFolder(folder: string): Promise<string[]> {
  const entries = await readdir(folder, { withFileTypes: true, recursive: true });
  return entries.filter((entry) => entry.isFile()).map((entry) => relative(folder, join(entry.parentPath, entry.name)));
}

/** Every file below `folder`, as seed files under `prefix` in the repo (its root by default). */
export async function folderFiles(folder: string, prefix = REPO_ROOT): Promise<SeedFile[]> {
  return (await listFolder(folder)).map((path) => ({ path: inSubfolder(prefix, path), diskPath: join(folder, path) }));
}

/**
 * Creates `name` on the local Hub if needed (and its owner, as an organisation, if unknown) and commits
 * `files` to main as `authorId` (default: the owner). Returns the repo and the new commit.
 */
export async function seedRepo(
  hub: LocalHub,
  name: string,
  files: SeedFile[],
  options: { private?: boolean; gated?: false | "auto" | "manual"; authorId?: string; title?: string } = {},
): Promise<{ repo: Repo; commit: Commit }> {
  const ownerName = name.split("/")[0]!;
  if (!hub.store.orgByName(ownerName) && !hub.store.userByName(ownerName)) hub.store.addOrg(ownerName);
  const repo = hub.store.repos.get(name) ?? hub.store.createRepo(name, { private: options.private ?? false, gated: options.gated ?? false });
  const changes = new Map<string, StoredFile | null>();
  for (const file of files) {
    if ("diskPath" in file) {
      await stat(file.diskPath);
      changes.set(file.path, await storedFile(file.path, { kind: "disk", path: file.diskPath }, file.sha256));
    } else {
      changes.set(file.path, await storedFile(file.path, { kind: "memory", data: Buffer.from(file.data) }));
    }
  }
  const commit = hub.store.commit(repo, "refs/heads/main", changes, { title: options.title ?? `Upload ${files.length} files`, authorId: options.authorId ?? repo.ownerId });
  return { repo, commit };
}

/**
 * Serves one of the project's tiny reference cases (test/fixtures/golden/<case>) as a model family:
 * `test-org/<case>-base`, and `test-org/<case>-chat` whose card names that base. Returns their ids.
 */
export async function seedReferencePair(hub: LocalHub, fixturesRoot: string, caseName: string): Promise<{ base: string; chat: string }> {
  const ids = { base: `test-org/${caseName}-base`, chat: `test-org/${caseName}-chat` };
  await seedRepo(hub, ids.base, await folderFiles(join(fixturesRoot, caseName, "base")));
  await seedRepo(hub, ids.chat, [
    ...(await folderFiles(join(fixturesRoot, caseName, "chat"))),
    { path: "README.md", data: `---\nbase_model: ${ids.base}\n---\n# ${caseName} chat\n` },
  ]);
  return ids;
}
