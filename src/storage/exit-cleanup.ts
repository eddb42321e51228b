const SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
const cleanups = new Set<() => void>();

function runAll(): void {
  for (const cleanup of cleanups) {
    try {
      cleanup();
    } catch {
      // Best effort: one folder that cannot be removed must not keep the others.
    }
  }
  cleanups.clear();
}

function listen(on: boolean): void {
  for (const name of SIGNALS) {
    if (on) process.on(name, onSignal);
    else process.removeListener(name, onSignal);
  }
  if (on) process.on("exit", runAll);
  else process.removeListener("exit", runAll);
}

/**
 * Ctrl-C while files are being staged must not leave them behind. When nothing else listens for the signal, the
 * process is about to die of it: the handler runs every cleanup in progress, then dies of the signal as it would
 * have (exit status 130 for Ctrl-C). When the process has its own handler (the bot drains on SIGTERM), the work
 * in progress goes on, and cleans up after itself or at exit: removing its files now would pull them from under it.
 */
function onSignal(signal: NodeJS.Signals): void {
  if (process.listenerCount(signal) > 1) return;
  runAll();
  listen(false);
  process.kill(process.pid, signal);
}

/**
 * Runs `cleanup` (synchronous: it may run in an exit handler) if the process dies of SIGINT, SIGTERM or SIGHUP or
 * exits before the returned function is called. Call that function once the work is done or cleaned up.
 */
export function cleanUpOnExit(cleanup: () => void): () => void {
  if (cleanups.size === 0) listen(true);
  cleanups.add(cleanup);
  return () => {
    if (!cleanups.delete(cleanup)) return;
    if (cleanups.size === 0) listen(false);
  };
}
