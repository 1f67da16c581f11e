/**
 * Calls back when the config file changes. Editors save in different ways
 * (in place, or write-and-rename): chokidar's atomic mode folds a rename into
 * one change, and a short debounce folds a burst of writes into one reload.
 */
import { watch } from "chokidar";

export interface ConfigWatcher {
  close(): Promise<void>;
}

export function watchConfig(path: string, onChange: () => void, debounceMs = 250): ConfigWatcher {
  let timer: NodeJS.Timeout | null = null;
  const fire = () => {
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = null;
      onChange();
    }, debounceMs);
  };
  const watcher = watch(path, { ignoreInitial: true, atomic: true });
  watcher.on("change", fire).on("add", fire);
  return {
    async close() {
      if (timer) clearTimeout(timer);
      await watcher.close();
    },
  };
}
