#!/usr/bin/env node
// The aoed entry point is CommonJS on purpose: libuv sizes its thread pool on
// first use, and loading ES modules already uses it. Every backend request in
// flight on the thread-pool engine holds a pool thread, so the default 4 would
// cap I/O concurrency across all exports; set the size before anything loads.
process.env.UV_THREADPOOL_SIZE ??= "16";
void import("./daemon.js");
