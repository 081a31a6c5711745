import { type Dirent, type FSWatcher, readdirSync, type Stats, statSync, watch } from "node:fs";
import path from "node:path";

/** Quiet period after the last file event before reloading: editors write in several steps. */
const SETTLE_MS = 250;

type Listener = (event: string, name: string | null) => void;

/**
 * Calls `onChange` once a burst of edits anywhere under `dir` has settled. Reload decisions
 * (validate, swap or keep the previous version) belong to the caller.
 *
 * Watches directories, never files, one non-recursive watch each: a directory watch reports every
 * write, create, delete and rename inside it by name, whatever inode the name points to, so the
 * rename saves of editors and `sed -i` cannot detach it. (Node 20's `recursive: true` on Linux
 * watches each file's inode and drops the events of the directory watches: after one rename save,
 * later edits went unnoticed.) When a burst settles, every watch is set up afresh from a new scan,
 * then `onChange` runs: directories added, renamed over or recreated (even with a reused inode
 * number) are watched again, and whatever changed before that is read by the reload that follows.
 * A watch on the parent notices `dir` itself being renamed over, removed or recreated.
 */
export function watchConfigDir(dir: string, onChange: () => void): { close(): void } {
  const root = path.resolve(dir);
  const parent = path.dirname(root);
  const rootName = path.basename(root);
  let watchers: FSWatcher[] = [];
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const schedule = () => {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(settle, SETTLE_MS);
  };
  const onParentEvent: Listener = (_event, name) => {
    if (name === null || name === rootName) schedule();
  };

  const unwatchAll = () => {
    for (const watcher of watchers) watcher.close();
    watchers = [];
  };
  const watchDirectory = (directory: string, listener: Listener) => {
    try {
      const watcher = watch(directory, { persistent: false }, listener);
      // A failed watch is dropped; the next settled burst sets it up again. SIGHUP still reloads.
      watcher.on("error", () => watcher.close());
      watchers.push(watcher);
    } catch {
      // Vanished meanwhile, or no inotify watches left: as above.
    }
  };

  /** Watches `dir`'s parent and every directory under `dir`, following symlinks as reloads do. */
  const rewatch = () => {
    unwatchAll();
    const visited = new Set<string>();
    const visit = (directory: string) => {
      let stats: Stats;
      try {
        stats = statSync(directory);
      } catch {
        return;
      }
      const identity = `${stats.dev}:${stats.ino}`;
      if (!stats.isDirectory() || visited.has(identity)) return;
      visited.add(identity);
      watchDirectory(directory, schedule);
      let entries: Dirent[];
      try {
        entries = readdirSync(directory, { withFileTypes: true });
      } catch {
        return;
      }
      for (const entry of entries) {
        if (entry.isDirectory() || entry.isSymbolicLink()) visit(path.join(directory, entry.name));
      }
    };
    if (parent !== root) watchDirectory(parent, onParentEvent);
    visit(root);
  };

  function settle() {
    timer = undefined;
    if (closed) return;
    rewatch();
    onChange();
  }

  rewatch();
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      timer = undefined;
      unwatchAll();
    },
  };
}
