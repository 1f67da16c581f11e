// io_uring for disk I/O, with raw syscalls (no liburing). Deliberately dumb:
// it creates the ring, maps it into JavaScript and watches for completions.
// Filling SQEs and reaping CQEs is done in TypeScript (src/io/uring.ts).
//
//   uringProbe() -> {ok, errno, code, step, features, read, write, fsync}
//       Sets up a tiny ring once, asks IORING_REGISTER_PROBE which opcodes
//       exist and closes it again. ok: the ring works and READ, WRITE and
//       FSYNC are supported. On failure errno/code/step say what refused
//       (EPERM from kernel.io_uring_disabled or seccomp, ENOSYS...).
//   uringSetup(entries, flags, cqEntries) -> UringHandle with read-only
//       fd, sqEntries, cqEntries, flags (the setup flags in effect), features,
//       sqRing, cqRing, sqes (external ArrayBuffers over the mmaps; sqRing and
//       cqRing are the same memory with IORING_FEAT_SINGLE_MMAP),
//       sqOff {head, tail, ringMask, ringEntries, flags, dropped, array},
//       cqOff {head, tail, ringMask, ringEntries, overflow, cqes, flags}
//       (byte offsets). The SQ index array is preset to the identity, so
//       SQE i is submitted from slot i: JS writes sqes[tail & mask], bumps tail.
//     enter(toSubmit, minComplete, flags) -> number  io_uring_enter: >= 0, or -errno
//     setMaxWorkers(bounded, unbounded) -> previous [bounded, unbounded] | -errno
//                     caps the kernel's io-wq threads for this ring (0: unchanged)
//     startPoll(cb)   registers an eventfd (IORING_REGISTER_EVENTFD) and
//                     watches it with uv_poll; cb() runs on the event loop
//                     after completions were posted (the eventfd is drained
//                     first), or, on an IORING_SETUP_DEFER_TASKRUN ring, once
//                     completions are waiting to be posted (cb drains it with
//                     runDeferred)
//     runDeferred()   DEFER_TASKRUN rings: posts the completions waiting for
//                     this thread (io_uring_enter GETEVENTS, only when the
//                     kernel flags some with IORING_SQ_TASKRUN), then drains
//                     the eventfd (the posting signals it too). Returns true
//                     to be called again: the flag is still set and the drain
//                     found a signal (recent kernels, 6.18 here, post at most
//                     20 per call and leave the rest flagged).
//     ref(), unref()  of the poll handle (unref'd: it does not keep the loop alive)
//     close()         idempotent; detaches the ArrayBuffers, unmaps, closes
//                     the ring and the eventfd. Requests still in the kernel
//                     are cancelled by it and never reported.
//   uringConstants: the opcodes and flags src/io/uring.ts uses, from the header.

#include <napi.h>
#include <uv.h>

#include "errors.h"
#include "factory.h"
#include "mapped-fd.h"

#include <errno.h>
#include <linux/io_uring.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif
#ifndef __NR_io_uring_enter
#define __NR_io_uring_enter 426
#endif
#ifndef __NR_io_uring_register
#define __NR_io_uring_register 427
#endif

namespace {

int SysSetup(unsigned entries, io_uring_params* p) {
  return static_cast<int>(syscall(__NR_io_uring_setup, entries, p));
}

int SysEnter(int fd, unsigned toSubmit, unsigned minComplete, unsigned flags) {
  return static_cast<int>(
      syscall(__NR_io_uring_enter, fd, toSubmit, minComplete, flags, nullptr, size_t(0)));
}

int SysRegister(int fd, unsigned opcode, void* arg, unsigned nrArgs) {
  return static_cast<int>(syscall(__NR_io_uring_register, fd, opcode, arg, nrArgs));
}

Napi::Object SqOffsets(Napi::Env env, const io_sqring_offsets& o) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("head", o.head);
  r.Set("tail", o.tail);
  r.Set("ringMask", o.ring_mask);
  r.Set("ringEntries", o.ring_entries);
  r.Set("flags", o.flags);
  r.Set("dropped", o.dropped);
  r.Set("array", o.array);
  return r;
}

Napi::Object CqOffsets(Napi::Env env, const io_cqring_offsets& o) {
  Napi::Object r = Napi::Object::New(env);
  r.Set("head", o.head);
  r.Set("tail", o.tail);
  r.Set("ringMask", o.ring_mask);
  r.Set("ringEntries", o.ring_entries);
  r.Set("overflow", o.overflow);
  r.Set("cqes", o.cqes);
  r.Set("flags", o.flags);
  return r;
}

class UringHandle : public Napi::ObjectWrap<UringHandle>, private MappedFd {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "UringHandle",
                       {
                           InstanceMethod<&UringHandle::Enter>("enter"),
                           InstanceMethod<&UringHandle::StartPoll>("startPoll"),
                           InstanceMethod<&UringHandle::RunDeferred>("runDeferred"),
                           InstanceMethod<&UringHandle::SetMaxWorkers>("setMaxWorkers"),
                           InstanceMethod<&UringHandle::Ref>("ref"),
                           InstanceMethod<&UringHandle::Unref>("unref"),
                           InstanceMethod<&UringHandle::Close>("close"),
                       });
  }

  UringHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<UringHandle>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsNumber() || !info[1].IsNumber() || !info[2].IsNumber()) {
      throw Napi::TypeError::New(env,
                                 "uringSetup(entries: number, flags: number, cqEntries: number)");
    }
    double entriesD = info[0].As<Napi::Number>().DoubleValue();
    double flagsD = info[1].As<Napi::Number>().DoubleValue();
    double cqD = info[2].As<Napi::Number>().DoubleValue();
    if (!(entriesD >= 1 && entriesD <= 32768) || double(unsigned(entriesD)) != entriesD ||
        !(cqD >= 0 && cqD <= 65536) || double(unsigned(cqD)) != cqD || !(flagsD >= 0) ||
        double(uint32_t(flagsD)) != flagsD) {
      throw Napi::RangeError::New(env, "uringSetup: entries 1..32768, cqEntries 0..65536");
    }
    io_uring_params p;
    std::memset(&p, 0, sizeof p);
    p.flags = uint32_t(flagsD);
    if (cqD > 0) {
      p.flags |= IORING_SETUP_CQSIZE;
      p.cq_entries = unsigned(cqD);
    }
    int fd = SysSetup(unsigned(entriesD), &p);
    if (fd < 0) throw ErrnoError(env, errno, "io_uring_setup");

    size_t sqLen = p.sq_off.array + p.sq_entries * sizeof(uint32_t);
    size_t cqLen = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
    size_t sqesLen = p.sq_entries * sizeof(io_uring_sqe);
    bool single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
    if (single) sqLen = cqLen = sqLen > cqLen ? sqLen : cqLen;
    // Each region is owned by map_ as soon as it is mapped: if a later one
    // fails, the throw destroys maps_, which unmaps them.
    auto map = [&](size_t len, off_t off, const char* what) {
      void* addr = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, off);
      if (addr == MAP_FAILED) {
        int e = errno;
        close(fd);
        throw ErrnoError(env, e, std::string("io_uring: mmap of the ") + what);
      }
      map_.Own(addr, len);
      return addr;
    };
    void* sq = map(sqLen, IORING_OFF_SQ_RING, "SQ ring");
    void* cq = single ? sq : map(cqLen, IORING_OFF_CQ_RING, "CQ ring");
    void* sqes = map(sqesLen, IORING_OFF_SQES, "SQE array");
    // Identity SQ index array: SQE i is always submitted from slot i.
    auto* array = reinterpret_cast<uint32_t*>(static_cast<char*>(sq) + p.sq_off.array);
    for (unsigned i = 0; i < p.sq_entries; i++) array[i] = i;

    fd_ = fd;
    deferred_ = (p.flags & IORING_SETUP_DEFER_TASKRUN) != 0;
    sqFlags_ = reinterpret_cast<uint32_t*>(static_cast<char*>(sq) + p.sq_off.flags);
    Napi::ArrayBuffer sqAb = map_.Expose(env, sq, sqLen);
    Napi::ArrayBuffer cqAb = single ? sqAb : map_.Expose(env, cq, cqLen);
    Napi::ArrayBuffer sqesAb = map_.Expose(env, sqes, sqesLen);

    auto ro = napi_enumerable;
    Napi::Object self = info.This().As<Napi::Object>();
    self.DefineProperties({
        Napi::PropertyDescriptor::Value("fd", Napi::Number::New(env, fd), ro),
        Napi::PropertyDescriptor::Value("sqEntries", Napi::Number::New(env, p.sq_entries), ro),
        Napi::PropertyDescriptor::Value("cqEntries", Napi::Number::New(env, p.cq_entries), ro),
        Napi::PropertyDescriptor::Value("flags", Napi::Number::New(env, p.flags), ro),
        Napi::PropertyDescriptor::Value("features", Napi::Number::New(env, p.features), ro),
        Napi::PropertyDescriptor::Value("sqRing", sqAb, ro),
        Napi::PropertyDescriptor::Value("cqRing", cqAb, ro),
        Napi::PropertyDescriptor::Value("sqes", sqesAb, ro),
        Napi::PropertyDescriptor::Value("sqOff", SqOffsets(env, p.sq_off), ro),
        Napi::PropertyDescriptor::Value("cqOff", CqOffsets(env, p.cq_off), ro),
    });

    poller_.AddCleanupHook(env);
  }

 private:
  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseNow();
    return info.Env().Undefined();
  }

  // enter(toSubmit, minComplete, flags) -> result >= 0, or -errno.
  Napi::Value Enter(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed_) return Napi::Number::New(env, -EBADF);
    unsigned toSubmit = info[0].As<Napi::Number>().Uint32Value();
    unsigned minComplete = info[1].As<Napi::Number>().Uint32Value();
    unsigned flags = info[2].As<Napi::Number>().Uint32Value();
    int r = SysEnter(fd_, toSubmit, minComplete, flags);
    return Napi::Number::New(env, r < 0 ? -errno : r);
  }

  // setMaxWorkers(bounded, unbounded) -> [bounded, unbounded] before the
  // change (0 leaves a limit as it is), or -errno (IORING_REGISTER_IOWQ_MAX_WORKERS,
  // Linux >= 5.15). Bounded workers do regular file and block device I/O.
  Napi::Value SetMaxWorkers(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed_) return Napi::Number::New(env, -EBADF);
    unsigned vals[2] = {info[0].As<Napi::Number>().Uint32Value(),
                        info[1].As<Napi::Number>().Uint32Value()};
    if (SysRegister(fd_, IORING_REGISTER_IOWQ_MAX_WORKERS, vals, 2) < 0) {
      return Napi::Number::New(env, -errno);
    }
    Napi::Array r = Napi::Array::New(env, 2);
    r.Set(uint32_t(0), vals[0]);
    r.Set(uint32_t(1), vals[1]);
    return r;
  }

  Napi::Value StartPoll(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed_) throw CodedError(env, EBADF, "io_uring: ring is closed");
    if (poller_.polling()) throw Napi::Error::New(env, "io_uring: already polling");
    if (info.Length() < 1 || !info[0].IsFunction()) {
      throw Napi::TypeError::New(env, "startPoll(cb: () => void)");
    }
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) throw ErrnoError(env, errno, "eventfd");
    if (SysRegister(fd_, IORING_REGISTER_EVENTFD, &efd, 1) < 0) {
      int e = errno;
      close(efd);
      throw ErrnoError(env, e, "io_uring: IORING_REGISTER_EVENTFD");
    }
    efd_ = efd;
    poller_.Start(env, efd, info[0].As<Napi::Function>(), "aoed.IoRing", "io_uring",
                  /*ownFd=*/true);
    int r = poller_.SetEvents(UV_READABLE);
    if (r < 0) throw ErrnoError(env, -r, "io_uring: uv_poll_start");
    return env.Undefined();
  }

  // See the header. The drain after the enter takes the signal of this
  // call's own posting, which would otherwise wake the loop once more for
  // nothing. It may take the signal of a completion queued after the enter
  // too, so the caller is told to come again whenever the drain found one
  // and the flag is set. A flag still set when no signal came since the
  // last call's drain is stale (a completion can set it after the enter
  // that posted it): stopping then loses nothing, as the next completion
  // signals anew.
  Napi::Value RunDeferred(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed_ || !deferred_ || efd_ < 0) return Napi::Boolean::New(env, false);
    if (TaskrunFlagged()) SysEnter(fd_, 0, 0, IORING_ENTER_GETEVENTS);
    bool signalled = DrainEventfd();
    return Napi::Boolean::New(env, signalled && TaskrunFlagged());
  }

  void Ref(const Napi::CallbackInfo&) { poller_.Ref(); }
  void Unref(const Napi::CallbackInfo&) { poller_.Unref(); }

  void OnPoll(int status, int events) override {
    if (!deferred_) DrainEventfd();
    poller_.Call(Value(), {});
  }

  // Whether the eventfd had been signalled.
  bool DrainEventfd() {
    uint64_t v;
    ssize_t n;
    while ((n = read(efd_, &v, sizeof v)) < 0 && errno == EINTR) {
    }
    return n == sizeof v;
  }

  bool TaskrunFlagged() const {
    return (__atomic_load_n(sqFlags_, __ATOMIC_ACQUIRE) & IORING_SQ_TASKRUN) != 0;
  }

  int efd_ = -1;  // owned by poller_, which closes it
  bool deferred_ = false;
  const uint32_t* sqFlags_ = nullptr;
};

Napi::Value UringProbe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object r = Napi::Object::New(env);
  auto fail = [&](int err, const char* step) {
    r.Set("ok", false);
    r.Set("errno", err);
    r.Set("code", uv_err_name(-err));
    r.Set("step", step);
    return r;
  };
  r.Set("read", false);
  r.Set("write", false);
  r.Set("fsync", false);
  io_uring_params p;
  std::memset(&p, 0, sizeof p);
  int fd = SysSetup(2, &p);
  if (fd < 0) return fail(errno, "io_uring_setup");
  r.Set("features", p.features);
  const unsigned nOps = 256;
  size_t len = sizeof(io_uring_probe) + nOps * sizeof(io_uring_probe_op);
  auto* probe = static_cast<io_uring_probe*>(std::calloc(1, len));
  if (probe == nullptr) {
    close(fd);
    return fail(ENOMEM, "calloc");
  }
  int rc = SysRegister(fd, IORING_REGISTER_PROBE, probe, nOps);
  int e = errno;
  close(fd);
  if (rc < 0) {
    std::free(probe);
    return fail(e, "IORING_REGISTER_PROBE");
  }
  auto has = [&](unsigned op) {
    return op <= probe->last_op && op < nOps && (probe->ops[op].flags & IO_URING_OP_SUPPORTED);
  };
  bool read = has(IORING_OP_READ), write = has(IORING_OP_WRITE), fsync = has(IORING_OP_FSYNC);
  std::free(probe);
  r.Set("read", read);
  r.Set("write", write);
  r.Set("fsync", fsync);
  if (!(read && write && fsync)) return fail(EOPNOTSUPP, "IORING_REGISTER_PROBE");
  r.Set("ok", true);
  r.Set("errno", 0);
  r.Set("code", "");
  r.Set("step", "");
  return r;
}

Napi::Object Constants(Napi::Env env) {
  Napi::Object c = Napi::Object::New(env);
  c.Set("OP_READ", uint32_t(IORING_OP_READ));
  c.Set("OP_WRITE", uint32_t(IORING_OP_WRITE));
  c.Set("OP_FSYNC", uint32_t(IORING_OP_FSYNC));
  c.Set("FSYNC_DATASYNC", uint32_t(IORING_FSYNC_DATASYNC));
  c.Set("SETUP_SUBMIT_ALL", uint32_t(IORING_SETUP_SUBMIT_ALL));
  c.Set("SETUP_SINGLE_ISSUER", uint32_t(IORING_SETUP_SINGLE_ISSUER));
  c.Set("SETUP_DEFER_TASKRUN", uint32_t(IORING_SETUP_DEFER_TASKRUN));
  c.Set("SETUP_TASKRUN_FLAG", uint32_t(IORING_SETUP_TASKRUN_FLAG));
  c.Set("ENTER_GETEVENTS", uint32_t(IORING_ENTER_GETEVENTS));
  c.Set("SQ_TASKRUN", uint32_t(IORING_SQ_TASKRUN));
  return c;
}

}  // namespace

void InitUring(Napi::Env env, Napi::Object exports) {
  ExportWithFactory<UringHandle>(env, exports, "UringHandle", "uringSetup");
  exports.Set("uringProbe", Napi::Function::New<UringProbe>(env, "uringProbe"));
  exports.Set("uringConstants", Constants(env));
}
