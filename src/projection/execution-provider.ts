import { z } from "zod";

/** `--ep` / `SAFE_LORA_EP`. `auto` is the CPU: a GPU provider is used only when named (README, "Known limits"). */
export const ExecutionProviderChoice = z.enum(["auto", "cpu", "cuda", "webgpu"]);
export type ExecutionProviderChoice = z.infer<typeof ExecutionProviderChoice>;

/** An onnxruntime execution provider's name, as a choice resolves to it. */
export type ExecutionProvider = "cpu" | "cuda" | "webgpu";

/** The onnxruntime execution provider name a choice resolves to. */
export function resolveExecutionProvider(choice: ExecutionProviderChoice): ExecutionProvider {
  return choice === "auto" ? "cpu" : choice;
}
