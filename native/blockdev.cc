// Block device and O_DIRECT helpers:
//   blockDeviceSize(fd) -> number    BLKGETSIZE64, bytes
//   logicalBlockSize(fd) -> number   BLKSSZGET
//   alignedBuffer(size, align) -> ArrayBuffer over posix_memalign memory
//                                 (zeroed, freed by the GC finalizer)
//   addressOf(ArrayBuffer | ArrayBufferView) -> bigint (for tests)
//   cachedPages(fd, offset, length) -> number
//                                 pages of that range in the page cache
//                                 (cachestat(2), Linux 6.5); -1 when it
//                                 cannot be had
//   writtenRange(fd, offset, length) -> number
//                                 1 if that range of the file is all in
//                                 written extents (FIEMAP: no hole, no
//                                 unwritten or delayed extent), 0 if not,
//                                 -1 when the filesystem cannot say

#include <napi.h>

#include "errors.h"

#include <errno.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

int FdArg(const Napi::CallbackInfo& info, const char* fn) {
  if (info.Length() < 1 || !info[0].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), std::string(fn) + "(fd: number)");
  }
  double d = info[0].As<Napi::Number>().DoubleValue();
  int fd = static_cast<int>(d);
  if (double(fd) != d || fd < 0) {
    throw Napi::RangeError::New(info.Env(), std::string(fn) + ": invalid fd");
  }
  return fd;
}

// Throws unless fd is an open block device.
void RequireBlockDevice(Napi::Env env, int fd) {
  struct stat st;
  if (fstat(fd, &st) < 0) throw ErrnoError(env, errno, "fd " + std::to_string(fd));
  if (!S_ISBLK(st.st_mode)) {
    const char* kind = S_ISREG(st.st_mode) ? "a regular file" : "not a block device";
    throw CodedError(env, ENOTBLK,
                     "fd " + std::to_string(fd) + " is not a block device (" + kind + ")");
  }
}

// ioctl(fd, request, &value) on a block device; the value as a Number.
template <typename T>
Napi::Value BlockIoctl(const Napi::CallbackInfo& info, const char* fn, unsigned long request,
                       const char* requestName) {
  Napi::Env env = info.Env();
  int fd = FdArg(info, fn);
  RequireBlockDevice(env, fd);
  T value = 0;
  if (ioctl(fd, request, &value) < 0) {
    throw ErrnoError(env, errno, "fd " + std::to_string(fd) + ": " + requestName);
  }
  return Napi::Number::New(env, static_cast<double>(value));
}

Napi::Value BlockDeviceSize(const Napi::CallbackInfo& info) {
  return BlockIoctl<uint64_t>(info, "blockDeviceSize", BLKGETSIZE64, "BLKGETSIZE64");
}

Napi::Value LogicalBlockSize(const Napi::CallbackInfo& info) {
  return BlockIoctl<int>(info, "logicalBlockSize", BLKSSZGET, "BLKSSZGET");
}

struct AlignedHint {
  size_t size;
};

void FreeAligned(Napi::Env env, void* data, AlignedHint* hint) {
  std::free(data);
  Napi::MemoryManagement::AdjustExternalMemory(env, -static_cast<int64_t>(hint->size));
  delete hint;
}

Napi::Value AlignedBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "alignedBuffer(size: number, align: number)");
  }
  double sizeD = info[0].As<Napi::Number>().DoubleValue();
  double alignD = info[1].As<Napi::Number>().DoubleValue();
  if (!(sizeD >= 0 && sizeD <= double(uint64_t(1) << 40)) || sizeD != double(uint64_t(sizeD))) {
    throw Napi::RangeError::New(env, "alignedBuffer: size must be an integer >= 0");
  }
  size_t size = static_cast<size_t>(sizeD);
  size_t align = static_cast<size_t>(alignD);
  if (double(align) != alignD || align < sizeof(void*) || align > (size_t(1) << 24) ||
      (align & (align - 1)) != 0) {
    throw Napi::RangeError::New(
        env, "alignedBuffer: align must be a power of two between 8 and 16 MiB");
  }
  void* p = nullptr;
  int r = posix_memalign(&p, align, size == 0 ? align : size);
  if (r != 0) throw ErrnoError(env, r, "alignedBuffer(" + std::to_string(size) + ")");
  std::memset(p, 0, size == 0 ? align : size);
  auto* hint = new AlignedHint{size == 0 ? align : size};
  Napi::ArrayBuffer ab;
  try {
    ab = Napi::ArrayBuffer::New(env, p, size, FreeAligned, hint);
  } catch (...) {
    std::free(p);
    delete hint;
    throw;
  }
  Napi::MemoryManagement::AdjustExternalMemory(env, static_cast<int64_t>(hint->size));
  return ab;
}

Napi::Value AddressOf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  void* data = nullptr;
  size_t offset = 0;
  if (info.Length() >= 1 && info[0].IsArrayBuffer()) {
    data = info[0].As<Napi::ArrayBuffer>().Data();
  } else if (info.Length() >= 1 && info[0].IsTypedArray()) {
    Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
    data = ta.ArrayBuffer().Data();
    offset = ta.ByteOffset();
  } else if (info.Length() >= 1 && info[0].IsDataView()) {
    Napi::DataView dv = info[0].As<Napi::DataView>();
    data = dv.ArrayBuffer().Data();
    offset = dv.ByteOffset();
  } else {
    throw Napi::TypeError::New(env, "addressOf(ArrayBuffer | ArrayBufferView)");
  }
  return Napi::BigInt::New(env, static_cast<uint64_t>(reinterpret_cast<uintptr_t>(data) + offset));
}

// cachestat(2), Linux 6.5; older headers lack its number, which is 451 on
// x86-64 and arm64 (other architectures: -1, as on a kernel without it).
#if !defined(__NR_cachestat) && (defined(__x86_64__) || defined(__aarch64__))
#define __NR_cachestat 451
#endif

struct CachestatRange {
  uint64_t off;
  uint64_t len;
};

struct Cachestat {
  uint64_t nr_cache;
  uint64_t nr_dirty;
  uint64_t nr_writeback;
  uint64_t nr_evicted;
  uint64_t nr_recently_evicted;
};

// The (fd, offset, length) arguments of cachedPages and writtenRange.
struct FileRange {
  int fd;
  uint64_t off;
  uint64_t len;
};

FileRange FileRangeArgs(const Napi::CallbackInfo& info, const char* name) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber()) {
    throw Napi::TypeError::New(env,
                               std::string(name) + "(fd: number, offset: number, length: number)");
  }
  int fd = FdArg(info, name);
  double off = info[1].As<Napi::Number>().DoubleValue();
  double len = info[2].As<Napi::Number>().DoubleValue();
  const double limit = 9007199254740992.0;  // 2^53: exact in a double
  if (!(std::isfinite(off) && std::isfinite(len) && off >= 0 && len > 0 && off < limit &&
        len < limit)) {
    throw Napi::RangeError::New(env, std::string(name) + ": offset >= 0 and length > 0, finite");
  }
  return {fd, static_cast<uint64_t>(off), static_cast<uint64_t>(len)};
}

// Never throws for what the kernel says (ENOSYS before 6.5, a seccomp
// filter...): the caller only chooses a faster way with the answer. Nor does
// writtenRange.
Napi::Value CachedPages(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FileRange r = FileRangeArgs(info, "cachedPages");
#ifdef __NR_cachestat
  int fd = r.fd;
  CachestatRange range{r.off, r.len};
  Cachestat cs{};
  if (syscall(__NR_cachestat, fd, &range, &cs, 0) < 0) return Napi::Number::New(env, -1);
  return Napi::Number::New(env, static_cast<double>(cs.nr_cache));
#else
  return Napi::Number::New(env, -1);
#endif
}

// Extents a direct write cannot simply overwrite in place: on ext4 an O_DIRECT
// write to a hole, an unwritten or a delayed extent allocates or converts, and
// one that covers part of a block then zeroes the rest of it under the file's
// exclusive lock, waiting for every direct write in flight.
constexpr uint32_t kNotPlainData = FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC |
                                   FIEMAP_EXTENT_ENCODED | FIEMAP_EXTENT_DATA_ENCRYPTED |
                                   FIEMAP_EXTENT_NOT_ALIGNED | FIEMAP_EXTENT_DATA_INLINE |
                                   FIEMAP_EXTENT_DATA_TAIL | FIEMAP_EXTENT_UNWRITTEN;

Napi::Value WrittenRange(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  FileRange r = FileRangeArgs(info, "writtenRange");
  constexpr unsigned kExtents = 16;
  alignas(struct fiemap) unsigned char
      mem[sizeof(struct fiemap) + kExtents * sizeof(struct fiemap_extent)];
  uint64_t at = r.off;
  const uint64_t end = r.off + r.len;
  while (at < end) {
    const uint64_t from = at;
    std::memset(mem, 0, sizeof mem);
    auto* fm = reinterpret_cast<struct fiemap*>(mem);
    fm->fm_start = at;
    fm->fm_length = end - at;
    fm->fm_extent_count = kExtents;
    if (ioctl(r.fd, FS_IOC_FIEMAP, fm) < 0) return Napi::Number::New(env, -1);
    if (fm->fm_mapped_extents == 0) return Napi::Number::New(env, 0);  // a hole
    for (unsigned i = 0; i < fm->fm_mapped_extents; i++) {
      const struct fiemap_extent& e = fm->fm_extents[i];
      // A gap before it is a hole; so is the end of the file before `end`.
      if (e.fe_logical > at || (e.fe_flags & kNotPlainData) != 0) return Napi::Number::New(env, 0);
      at = std::max<uint64_t>(at, e.fe_logical + e.fe_length);
      if (at >= end) return Napi::Number::New(env, 1);
      if ((e.fe_flags & FIEMAP_EXTENT_LAST) != 0) return Napi::Number::New(env, 0);
    }
    if (at == from) return Napi::Number::New(env, -1);  // no progress: a filesystem's oddity
  }
  return Napi::Number::New(env, 1);
}

}  // namespace

void InitBlockdev(Napi::Env env, Napi::Object exports) {
  exports.Set("blockDeviceSize", Napi::Function::New<BlockDeviceSize>(env, "blockDeviceSize"));
  exports.Set("logicalBlockSize", Napi::Function::New<LogicalBlockSize>(env, "logicalBlockSize"));
  exports.Set("alignedBuffer", Napi::Function::New<AlignedBuffer>(env, "alignedBuffer"));
  exports.Set("addressOf", Napi::Function::New<AddressOf>(env, "addressOf"));
  exports.Set("cachedPages", Napi::Function::New<CachedPages>(env, "cachedPages"));
  exports.Set("writtenRange", Napi::Function::New<WrittenRange>(env, "writtenRange"));
}
