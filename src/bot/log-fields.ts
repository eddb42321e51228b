/**
 * Log lines about a job: a public repo is named, a private one is not — neither in a field nor inside a
 * message that quotes it (errors often do). Logs are the operator's, but they travel to log services and
 * dashboards that more people read than the private repo's members.
 */
export function repoLogFields(repo: string, isPrivate: boolean): { private: boolean; repo?: string } {
  return isPrivate ? { private: true } : { private: false, repo };
}

export function redactRepo(text: string, repo: string, isPrivate: boolean): string {
  return isPrivate ? text.split(repo).join("<private repo>") : text;
}
