// Imported first by the daemon: libuv sizes its thread pool on first use, and
// every backend request in flight holds a pool thread, so the default 4 would
// cap I/O concurrency across all exports.
process.env.UV_THREADPOOL_SIZE ??= "16";
