import type { ErrorFix } from "../errors.js";

/** What a CLI user does about an error, in `safe-lora patch`'s flags (the bot words the same fix in safe-lora.yaml). */
export function cliAdvice(fix: ErrorFix): string {
  switch (fix.kind) {
    case "name-aligned":
      return "Pass --aligned <hub id> (the chat/instruct model it was trained on)";
    case "name-base":
      return "Pass --base <hub id of its unaligned base model>";
    case "name-pair-anyway":
      return "To patch anyway, pass --base and --aligned";
    case "unquantized":
      return `Pass --${fix.role} with the original (unquantized) release`;
    case "check-pair":
      return "Check that --base and --aligned are the model family the adapter was trained on";
    case "model-access":
      if (fix.reason === "gated") return `Accept its conditions at ${fix.page} with the account of your token, or use another token`;
      if (fix.reason === "token-refused") return "Check HF_TOKEN or the token file";
      return "If it exists, set HF_TOKEN (or log in with huggingface-cli) to a token that can read it";
    case "raise-limit":
      // Only maxRank reaches the CLI: the other caps are the bot's.
      return `safe-lora patch applies the same limits.${fix.limit} as the bot and has no option to raise it`;
    case "needs-gpu":
      return `Run it with --ep cuda on a machine with an NVIDIA GPU, or pass --max-cpu-module-elements ${fix.elements} to run it on this CPU anyway`;
  }
}

/** The one line the CLI prints for an error: what is wrong, then what to do. */
export function cliErrorLine(message: string, fix: ErrorFix | null): string {
  return fix ? `${message}. ${cliAdvice(fix)}` : message;
}
