import { parse as parseYaml } from "yaml";

/**
 * The YAML front matter of a model card (README.md), as the Hub parses it into `cardData`;
 * null when there is none or it is not a YAML mapping.
 */
export function parseCardData(readme: string): Record<string, unknown> | null {
  const match = /^---\r?\n([\s\S]*?)\r?\n---(\r?\n|$)/.exec(readme);
  if (!match) return null;
  try {
    const data: unknown = parseYaml(match[1]!);
    return data && typeof data === "object" && !Array.isArray(data) ? (data as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

/** `base_model` of a card: one id or a list of ids. */
export function cardBaseModels(card: Record<string, unknown> | null | undefined): string[] {
  const value = card?.base_model;
  return ([] as unknown[]).concat(value ?? []).filter((id): id is string => typeof id === "string" && id.length > 0);
}

/** `license` of a card (e.g. `apache-2.0`), which the variant's card repeats; null when absent. */
export function cardLicense(card: Record<string, unknown> | null | undefined): string | null {
  const value = card?.license;
  return typeof value === "string" && value.length > 0 ? value : null;
}
