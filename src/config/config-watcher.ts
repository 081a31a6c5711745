import { type FSWatcher, watch } from "node:fs";

/** Quiet period after the last file event before reloading: editors write in several steps. */
const SETTLE_MS = 250;

/**
 * Calls `onChange` once a burst of edits anywhere under `dir` has settled. Reload decisions
 * (validate, swap or keep the previous version) belong to the caller.
 */
export function watchConfigDir(dir: string, onChange: () => void): { close(): void } {
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    clearTimeout(timer);
    timer = setTimeout(onChange, SETTLE_MS);
  };
  const watcher: FSWatcher = watch(dir, { recursive: true, persistent: false }, schedule);
  watcher.on("error", () => {
    /* A vanished directory stops watching; SIGHUP still reloads. */
  });
  return {
    close() {
      clearTimeout(timer);
      watcher.close();
    },
  };
}
