import type { ExecutionProvider, ExecutionProviderChoice } from "./execution-provider.js";
import { ProjectionThread } from "./projection-thread.js";

/** What a worker can run, as the queue's capabilities advertise it. */
export interface DetectedCapabilities {
  /** The provider this process's projections run on: what `choice` resolved to here. */
  readonly executionProvider: ExecutionProvider;
  /** Whether that provider is a GPU one (cuda, webgpu). */
  readonly gpu: boolean;
  /** Why better providers did not load, one line each ("cuda: …"), for operators; empty for a named provider. */
  readonly fallbacks: string[];
}

/**
 * Opens the projection thread's session for `choice` as a run would (so a named provider that does not load fails
 * here, with its SafeLoraError) and says what this process runs on. The answer is the one every later run gets:
 * the thread keeps its sessions and what `auto` came to for its lifetime.
 */
export async function detectWorkerCapabilities(choice: ExecutionProviderChoice, thread: Pick<ProjectionThread, "open"> = ProjectionThread.shared()): Promise<DetectedCapabilities> {
  const { provider, fallbacks } = await thread.open(choice);
  return { executionProvider: provider, gpu: provider !== "cpu", fallbacks: fallbacks.map(({ provider: passed, reason }) => `${passed}: ${reason}`) };
}
