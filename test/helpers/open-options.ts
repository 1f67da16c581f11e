/** Options for openFileBackend in tests: export e0.1, read-write, buffered, write cache on, the whole file; `over` replaces fields. */
import type { OpenOptions } from "../../src/io/open.js";

export function openOptions(path: string, over: Partial<OpenOptions> = {}): OpenOptions {
  return {
    path,
    exportName: "e0.1",
    readOnly: false,
    directIo: false,
    writeCache: true,
    offset: 0,
    length: null,
    ...over,
  };
}
