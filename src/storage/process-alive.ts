import { rm } from "node:fs/promises";
import { join } from "node:path";

/** Whether process `pid` still runs (another user's counts: it cannot be signalled, but it exists). */
export function isRunning(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but is another user's.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes the folders among `entries` of `parent` whose names match `pattern` (its first group a pid) and whose
 * process is gone: what a killed run (SIGKILL, power loss) left. A live process's folder, and any other name,
 * is never touched.
 */
export async function removeFoldersOfGoneProcesses(parent: string, entries: readonly string[], pattern: RegExp): Promise<void> {
  for (const entry of entries) {
    const match = pattern.exec(entry);
    if (match && !isRunning(Number(match[1]))) await rm(join(parent, entry), { recursive: true, force: true });
  }
}
