/**
 * Outside text — tensor and folder names, paths, messages that quote them, comment commands — goes into
 * Markdown the bot publishes under its own account. These helpers make sure such text stays text: it cannot
 * open a heading, a link or an HTML comment, close a code span, or @-mention anyone.
 */

/**
 * A word joiner after `@`: the text reads the same, but no forge turns it into a mention (a notification).
 * Only an `@` that could start a mention is touched — one at the start or after a space or punctuation — so
 * `org/name@<sha>` in a command stays exactly as it must be copied.
 */
export function noMentions(text: string): string {
  return text.replace(/(^|[^\p{L}\p{N}_-])@(?=[\p{L}\p{N}_-])/gu, "$1@\u2060");
}

/** Control characters (newlines included) would end a line, a table row or a heading: shown as spaces. */
const oneLine = (text: string) => text.replace(/[\p{Cc}\u2028\u2029]+/gu, " ");

const longestRun = (text: string, char: string) => Math.max(0, ...(text.match(new RegExp(`${char}+`, "g")) ?? []).map((run) => run.length));

/** An inline code span that holds any text: its fence is longer than any run of backticks inside. */
export function code(text: string): string {
  // An empty span (two backticks) is no span: it would pair with a later fence on the line.
  const flat = noMentions(oneLine(text)) || " ";
  const fence = "`".repeat(longestRun(flat, "`") + 1);
  const pad = flat.startsWith("`") || flat.endsWith("`") || flat.startsWith(" ") ? " " : "";
  return `${fence}${pad}${flat}${pad}${fence}`;
}

/** A fenced block for text quoted whole (an error message, a command): nothing in it is Markdown. */
export function codeBlock(text: string, language = "text"): string {
  const body = noMentions(text.replace(/\r\n?/g, "\n"));
  const fence = "`".repeat(Math.max(3, longestRun(body, "`") + 1));
  return `${fence}${language}\n${body}\n${fence}`;
}

/** Text for a title or other plain single line: one line, no mentions, bounded. */
export function plainLine(text: string, max = 200): string {
  const flat = noMentions(oneLine(text)).trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** A relative link target to a repo path: each segment percent-encoded, so `)` or spaces cannot end the link. */
export function linkPath(path: string): string {
  // encodeURIComponent leaves ( ) ! * ' alone, and a `)` would end the link: the rest would become a bare URL.
  const segment = (part: string) => encodeURIComponent(part).replace(/[()!*']/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `./${path.split("/").map(segment).join("/")}`;
}

/** A GFM table cell: `|` splits cells before code spans are read, so it is escaped even inside them. */
export function tableCell(markdown: string): string {
  return markdown.replace(/\|/g, "\\|");
}

/** Outside text inside prose: one line, no mentions, and the characters that start Markdown or HTML escaped. */
export function escapeMarkdown(text: string): string {
  return (
    noMentions(oneLine(text))
      .replace(/[\\`*_[\]{}()<>#|~!&]/g, (c) => `\\${c}`)
      // GFM links bare URLs and www. names by itself: a backslash inside each breaks the autolink.
      .replace(/:\/\//g, "\\://")
      .replace(/\bwww\./gi, (www) => `${www.slice(0, 3)}\\.`)
  );
}
