import { z } from "zod";

/** `--ep` / `SAFE_LORA_EP`. `auto` is the CPU: a GPU provider is used only when named (README, "Known limits"). */
export const ExecutionProviderChoice = z.enum(["auto", "cpu", "cuda", "webgpu"]);
export type ExecutionProviderChoice = z.infer<typeof ExecutionProviderChoice>;

/** The onnxruntime execution provider name a choice resolves to. */
export function resolveExecutionProvider(choice: ExecutionProviderChoice): "cpu" | "cuda" | "webgpu" {
  return choice === "auto" ? "cpu" : choice;
}
