import { z } from "zod";

/**
 * `--ep` / `SAFE_LORA_EP`. `auto` runs on the first of cuda, webgpu, cpu whose onnxruntime session can be made,
 * and the report records which ran and why the better ones did not (provider-loading.ts); a named provider that
 * does not load fails.
 */
export const ExecutionProviderChoice = z.enum(["auto", "cpu", "cuda", "webgpu"]);
export type ExecutionProviderChoice = z.infer<typeof ExecutionProviderChoice>;

/** An onnxruntime execution provider's name, as a choice resolves to it. */
export type ExecutionProvider = "cpu" | "cuda" | "webgpu";
