// Memory-mapped backing files, for stores that live in memory (tmpfs):
//   mapFile(fd, length, writable) -> ArrayBuffer over mmap(MAP_SHARED)
//   unmapFile(ArrayBuffer)        detaches it and unmaps now (else the GC does)
//   copyGuarded(src, srcOff, dst, dstOff, len) -> 0 | EIO
//   mapPopulated(ArrayBuffer) -> whether the background populate has finished
// A read or write is then a memcpy instead of a pread/pwrite system call.
// A fresh mapping takes a page fault on every page's first touch; a thread
// maps the file's resident pages in 2 MiB steps (MADV_POPULATE_READ, Linux
// 5.14+) so the event loop need not. Pages not in memory (holes, evicted
// disk pages) are skipped: populating must not allocate or read anything.
// mincore() does not count a tmpfs page that was fallocated but never
// written, so a tmpfs file with all its blocks allocated is populated whole.
// A file truncated under its mapping raises SIGBUS on access; copyGuarded
// turns that into EIO for the one copy instead of killing the process.

#include <napi.h>

#include "errors.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <vector>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

namespace {

// Shared by a mapping and its populating thread: the thread holds `lock`
// around each step, so unmapping waits for at most one step and the thread
// never touches an address that was unmapped (and maybe reused).
struct Populate {
  std::mutex lock;
  bool stop = false;
  std::atomic<bool> done{false};
};

struct Mapping {
  void* addr;
  size_t len;
  std::shared_ptr<Populate> populate;
};

// Stops the populating thread, then unmaps.
void Unmap(Mapping* m) {
  std::lock_guard<std::mutex> hold(m->populate->lock);
  m->populate->stop = true;
  munmap(m->addr, m->len);
}

// Whether every page of the file is memory already: a tmpfs file with no
// holes anywhere (fallocated or written). Blocks past a hole could otherwise
// make up for it, and a read fault in a hole of a shared mapping allocates.
bool AllInMemory(int fd) {
  struct statfs fs {};
  struct stat st {};
  if (fstatfs(fd, &fs) != 0 || fs.f_type != TMPFS_MAGIC || fstat(fd, &st) != 0) return false;
  const uint64_t page = uint64_t(sysconf(_SC_PAGESIZE));
  const uint64_t pages = (uint64_t(st.st_size) + page - 1) / page;
  return uint64_t(st.st_blocks) * 512 >= pages * page;
}

// The populating thread: the whole mapping, or runs of resident pages
// (mincore), one step at a time. Any error (EINVAL before 5.14, EFAULT past a
// truncated end) ends it: the pages left fault in on first touch as before.
void PopulateResident(uint8_t* addr, size_t len, bool whole, std::shared_ptr<Populate> p) {
  const size_t page = size_t(sysconf(_SC_PAGESIZE));
  const size_t step = size_t(2) << 20;
  std::vector<unsigned char> resident(step / page);
  bool failed = false;
  for (size_t at = 0; at < len && !failed; at += step) {
    std::lock_guard<std::mutex> hold(p->lock);
    if (p->stop) break;
    size_t n = std::min(step, len - at);
    size_t pages = (n + page - 1) / page;
    if (whole) {
      failed = madvise(addr + at, n, MADV_POPULATE_READ) != 0;
      continue;
    }
    if (mincore(addr + at, n, resident.data()) != 0) break;
    for (size_t i = 0; i < pages && !failed;) {
      if ((resident[i] & 1) == 0) {
        i++;
        continue;
      }
      size_t j = i;
      while (j < pages && (resident[j] & 1) != 0) j++;
      size_t end = std::min(j * page, n);
      failed = madvise(addr + at + i * page, end - i * page, MADV_POPULATE_READ) != 0;
      i = j;
    }
  }
  p->done = true;
}

// Mappings by address, so unmapFile() can find the one behind an ArrayBuffer
// and the finalizer knows it is already gone. Worker threads map too.
std::mutex gMapsLock;
std::unordered_map<void*, Mapping*> gMaps;

// Unmap() may wait for a populate step: never while holding gMapsLock, which
// every thread's mapFile() needs.
void FinalizeMapping(Napi::Env, void*, Mapping* m) {
  if (m->addr != nullptr) {
    {
      std::lock_guard<std::mutex> hold(gMapsLock);
      gMaps.erase(m->addr);
    }
    Unmap(m);
  }
  delete m;
}

// The copy in progress on this thread, if any: where SIGBUS jumps back to.
// volatile and fenced: the compiler must not drop the store before the copy.
// initial-exec: no lazy TLS allocation can happen inside the signal handler.
thread_local sigjmp_buf* volatile tGuard __attribute__((tls_model("initial-exec"))) = nullptr;
struct sigaction gPrevBus;
std::once_flag gBusInstalled;

void OnBus(int sig, siginfo_t* info, void* ctx) {
  if (tGuard != nullptr) siglongjmp(*tGuard, 1);
  // Not ours: whoever handled SIGBUS before us, else the default (a crash).
  if ((gPrevBus.sa_flags & SA_SIGINFO) != 0 && gPrevBus.sa_sigaction != nullptr) {
    gPrevBus.sa_sigaction(sig, info, ctx);
  } else if (gPrevBus.sa_handler != SIG_DFL && gPrevBus.sa_handler != SIG_IGN) {
    gPrevBus.sa_handler(sig);
  } else {
    signal(SIGBUS, SIG_DFL);
    raise(SIGBUS);
  }
}

void InstallBusHandler() {
  struct sigaction sa {};
  sa.sa_sigaction = OnBus;
  // SA_NODEFER: leaving the handler by siglongjmp must not leave SIGBUS blocked.
  sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, &gPrevBus);
}

int CopyGuarded(void* dst, const void* src, size_t n) {
  sigjmp_buf jump;
  // No signal mask saved: that would be a system call per copy.
  if (sigsetjmp(jump, 0) != 0) {
    tGuard = nullptr;
    return EIO;
  }
  tGuard = &jump;
  std::atomic_signal_fence(std::memory_order_seq_cst);
  std::memcpy(dst, src, n);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  tGuard = nullptr;
  return 0;
}

// The bytes of an ArrayBuffer or a view (Buffer, typed array).
bool BytesOf(Napi::Value v, uint8_t** data, size_t* len) {
  if (v.IsArrayBuffer()) {
    Napi::ArrayBuffer ab = v.As<Napi::ArrayBuffer>();
    *data = static_cast<uint8_t*>(ab.Data());
    *len = ab.ByteLength();
    return true;
  }
  if (v.IsTypedArray()) {
    Napi::TypedArray ta = v.As<Napi::TypedArray>();
    *data = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    *len = ta.ByteLength();
    return true;
  }
  return false;
}

Napi::Value MapFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsBoolean()) {
    throw Napi::TypeError::New(env, "mapFile(fd: number, length: number, writable: boolean)");
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  double length = info[1].As<Napi::Number>().DoubleValue();
  // An ArrayBuffer holds at most 4 GiB on Node 20; a bigger one would be refused after mapping.
  if (!(length >= 1) || length > double(uint64_t(1) << 32) || length != double(size_t(length))) {
    throw Napi::RangeError::New(env, "mapFile: length must be a whole number of bytes from 1 to 4 GiB");
  }
  bool writable = info[2].As<Napi::Boolean>().Value();
  std::call_once(gBusInstalled, InstallBusHandler);
  size_t len = size_t(length);
  void* addr = mmap(nullptr, len, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, fd, 0);
  if (addr == MAP_FAILED) throw ErrnoError(env, errno, "mmap of the backing file");
  auto* m = new Mapping{addr, len, std::make_shared<Populate>()};
  {
    std::lock_guard<std::mutex> hold(gMapsLock);
    gMaps[addr] = m;
  }
  try {
    std::thread(PopulateResident, static_cast<uint8_t*>(addr), len, AllInMemory(fd),
                m->populate)
        .detach();
  } catch (const std::system_error&) {
    m->populate->done = true;  // no thread to spare: pages fault in on first touch
  }
  return Napi::ArrayBuffer::New(env, addr, len, FinalizeMapping, m);
}

Napi::Value UnmapFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) {
    throw Napi::TypeError::New(env, "unmapFile(map: ArrayBuffer)");
  }
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  void* addr = ab.Data();
  Mapping* m;
  {
    std::lock_guard<std::mutex> hold(gMapsLock);
    auto it = gMaps.find(addr);
    if (it == gMaps.end()) return env.Undefined();  // not a mapping, or unmapped already
    m = it->second;
    gMaps.erase(it);
  }
  ab.Detach();
  Unmap(m);
  m->addr = nullptr;
  return env.Undefined();
}

Napi::Value MapPopulated(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) {
    throw Napi::TypeError::New(env, "mapPopulated(map: ArrayBuffer)");
  }
  std::lock_guard<std::mutex> hold(gMapsLock);
  auto it = gMaps.find(info[0].As<Napi::ArrayBuffer>().Data());
  // Not a mapping (or unmapped): nothing left to populate.
  return Napi::Boolean::New(env, it == gMaps.end() || it->second->populate->done);
}

Napi::Value CopyGuardedJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  uint8_t* src;
  uint8_t* dst;
  size_t srcLen, dstLen;
  if (info.Length() < 5 || !BytesOf(info[0], &src, &srcLen) || !info[1].IsNumber() ||
      !BytesOf(info[2], &dst, &dstLen) || !info[3].IsNumber() || !info[4].IsNumber()) {
    throw Napi::TypeError::New(
        env, "copyGuarded(src, srcOffset: number, dst, dstOffset: number, length: number)");
  }
  double so = info[1].As<Napi::Number>().DoubleValue();
  double doff = info[3].As<Napi::Number>().DoubleValue();
  double n = info[4].As<Napi::Number>().DoubleValue();
  if (!(so >= 0 && doff >= 0 && n >= 0) || so + n > double(srcLen) || doff + n > double(dstLen)) {
    throw Napi::RangeError::New(env, "copyGuarded: range outside a buffer");
  }
  return Napi::Number::New(env, CopyGuarded(dst + size_t(doff), src + size_t(so), size_t(n)));
}

}  // namespace

void InitMapped(Napi::Env env, Napi::Object exports) {
  exports.Set("mapFile", Napi::Function::New<MapFile>(env, "mapFile"));
  exports.Set("unmapFile", Napi::Function::New<UnmapFile>(env, "unmapFile"));
  exports.Set("mapPopulated", Napi::Function::New<MapPopulated>(env, "mapPopulated"));
  exports.Set("copyGuarded", Napi::Function::New<CopyGuardedJs>(env, "copyGuarded"));
}
