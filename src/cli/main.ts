import { didYouMean } from "../did-you-mean.js";
import { errorRule, ExitCode, SafeLoraError } from "../errors.js";
import { TOOL } from "../version.js";
import { cliErrorLine } from "./fix-advice.js";
import { processIo, type CliIo } from "./io.js";
import { backfillCommand, serveCommand, workerCommand } from "./bot-commands.js";
import { demoCommand } from "./demo-command.js";
import { patchCommand } from "./patch-command.js";

const HELP = `safe-lora ${TOOL.version}: Safe LoRA for LoRA adapters

Usage:
  safe-lora patch --adapter <dir | org/name[@rev]> [--base …] [--aligned …] [options]
  safe-lora serve                     the Hub bot (webhooks, status page, in-process worker)
  safe-lora worker                    a worker only, on the same queue
  safe-lora backfill <org|user|repo>  queue scans of existing repos
  safe-lora demo                      the bot end to end against a local Hub, offline
  safe-lora --version

Run "safe-lora <command> --help" for a command's options.`;

const CLI_COMMANDS = ["patch", "serve", "worker", "backfill", "demo"];

/** Runs the CLI with `args` (without node and script) and returns the exit code; never throws. */
export async function main(args: string[], io: CliIo = processIo): Promise<number> {
  const [command, ...rest] = args;
  try {
    switch (command) {
      case "patch":
        return await patchCommand(rest, io);
      case "serve":
        return await serveCommand(rest, io);
      case "worker":
        return await workerCommand(rest, io);
      case "backfill":
        return await backfillCommand(rest, io);
      case "demo":
        return await demoCommand(rest, io);
      case "--version":
      case "-v":
        io.stdout(`${TOOL.version}\n`);
        return ExitCode.ok;
      case undefined:
      case "help":
      case "--help":
      case "-h":
        io.stdout(`${HELP}\n`);
        return command === undefined ? ExitCode.usage : ExitCode.ok;
      default: {
        const near = didYouMean(command, CLI_COMMANDS);
        throw new SafeLoraError(`unknown command "${command}"${near ? `: did you mean "${near}"? Run` : "; run"} safe-lora --help`, "usage");
      }
    }
  } catch (error) {
    if (error instanceof SafeLoraError) {
      io.stderr(`safe-lora: ${cliErrorLine(error.message, error.fix)}\n`);
      return errorRule(error.code).exitCode;
    }
    io.stderr(`safe-lora: internal error, please report it: ${(error as Error)?.stack ?? String(error)}\n`);
    return ExitCode.internal;
  }
}
