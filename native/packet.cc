// AF_PACKET socket with TPACKET_V2 RX and TX rings mapped into JavaScript.
//
// openPacket(ifname, rxRingBytes, txRingBytes, frameSize[, fanout]) returns a
// PacketHandle with read-only properties
//   fd, ifindex, ifname, mac (Buffer, 6 bytes), mtu,
//   rxRing, txRing (external ArrayBuffers over the one mmap, no copy),
//   rxFrameSize, rxFrameCount, txFrameSize, txFrameCount,
//   fanoutId (0 without fanout)
// and methods
//   kick() -> 0 | errno         send(fd, NULL, 0, MSG_DONTWAIT)
//   setSteering(program) -> 0 | errno   PACKET_FANOUT_DATA for the group
//   stats() -> {packets, drops} PACKET_STATISTICS (reading resets them)
//   startPoll(cb, readable)     uv_poll; cb(status, events)
//   setPollEvents(readable)
//   ref(), unref()              of the poll handle
//   close()                     idempotent; detaches both ArrayBuffers
// and interfaceLink(ifname) -> {ifindex, mtu, up} | null (null: no such interface
// in this network namespace; ioctls, so it works where sysfs shows another one),
// and schedYield(): sched_yield(2), before a busy-poll watch.
//
// fanout, when given, is {id, program}: id 0 creates a PACKET_FANOUT_CBPF
// group with a kernel-chosen unique id and installs program (a Buffer of
// struct sock_filter); another id joins that group. A joining socket drops
// everything until it is in the group, so it never sees a copy of a frame
// another member also gets.
//
// Ring walking, status handling and everything protocol related is done in
// TypeScript (src/net/packet-socket.ts).

#include <napi.h>
#include <uv.h>

#include "errors.h"
#include "factory.h"
#include "mapped-fd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <linux/filter.h>

#ifndef PACKET_FANOUT_FLAG_UNIQUEID
#define PACKET_FANOUT_FLAG_UNIQUEID 0x2000
#endif

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

namespace {

constexpr uint16_t kEthPAoe = 0x88A2;
constexpr size_t kMaxRingBytes = size_t(1) << 30;

struct OpenState {
  int fd = -1;
  int ifindex = 0;
  int mtu = 0;
  unsigned char mac[6] = {0, 0, 0, 0, 0, 0};
  void* addr = MAP_FAILED;
  size_t mapLen = 0;
  tpacket_req rx{};
  tpacket_req tx{};
  int fanoutId = 0;
};

// The steering program and group of a socket that fans out with others.
struct FanoutRequest {
  bool enabled = false;
  int id = 0;  // 0: create a new group
  std::vector<sock_filter> program;
};

struct OpenFailure {
  int err = 0;
  std::string msg;  // full message when custom, else the failing step
  bool custom = false;
};

bool Fail(OpenFailure* f, int err, std::string msg, bool custom = false) {
  f->err = err;
  f->msg = std::move(msg);
  f->custom = custom;
  return false;
}

bool SetIntOpt(int fd, int level, int name, int value) {
  return setsockopt(fd, level, name, &value, sizeof value) == 0;
}

bool FillIfreq(ifreq* ifr, const std::string& ifname) {
  std::memset(ifr, 0, sizeof *ifr);
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) return false;
  std::memcpy(ifr->ifr_name, ifname.data(), ifname.size());
  return true;
}

tpacket_req RingReq(size_t bytes, unsigned blockSize, unsigned frameSize) {
  size_t blocks = bytes / blockSize;
  if (blocks == 0) blocks = 1;
  tpacket_req r{};
  r.tp_block_size = blockSize;
  r.tp_block_nr = static_cast<unsigned>(blocks);
  r.tp_frame_size = frameSize;
  r.tp_frame_nr = static_cast<unsigned>(blocks * (blockSize / frameSize));
  return r;
}

bool SetFilter(int fd, int level, int name, const std::vector<sock_filter>& prog) {
  sock_fprog fprog{};
  fprog.len = static_cast<unsigned short>(prog.size());
  fprog.filter = const_cast<sock_filter*>(prog.data());
  return setsockopt(fd, level, name, &fprog, sizeof fprog) == 0;
}

// bind() -> PACKET_FANOUT: a joining socket is filtered to drop everything
// until it is in the group, where the group's program decides what it gets.
bool JoinFanout(const FanoutRequest& fan, const std::string& n, OpenState* st, OpenFailure* f) {
  int arg = fan.id | ((PACKET_FANOUT_CBPF | (fan.id == 0 ? PACKET_FANOUT_FLAG_UNIQUEID : 0)) << 16);
  if (!SetIntOpt(st->fd, SOL_PACKET, PACKET_FANOUT, arg)) {
    return Fail(f, errno, n + ": PACKET_FANOUT " + (fan.id == 0 ? "(new group)" : "(join " + std::to_string(fan.id) + ")"));
  }
  if (fan.id == 0) {
    if (!SetFilter(st->fd, SOL_PACKET, PACKET_FANOUT_DATA, fan.program)) {
      return Fail(f, errno, n + ": PACKET_FANOUT_DATA (steering program)");
    }
    int got = 0;
    socklen_t len = sizeof got;
    if (getsockopt(st->fd, SOL_PACKET, PACKET_FANOUT, &got, &len) < 0) {
      return Fail(f, errno, n + ": getsockopt PACKET_FANOUT");
    }
    st->fanoutId = got & 0xffff;
  } else {
    int dummy = 0;
    if (setsockopt(st->fd, SOL_SOCKET, SO_DETACH_FILTER, &dummy, sizeof dummy) < 0) {
      return Fail(f, errno, n + ": SO_DETACH_FILTER");
    }
    st->fanoutId = fan.id;
  }
  return true;
}

bool DoOpen(const std::string& ifname, size_t rxBytes, size_t txBytes, unsigned frameSize,
            const FanoutRequest& fan, OpenState* st, OpenFailure* f) {
  const std::string& n = ifname;
  if (ifname.empty() || ifname.size() >= IFNAMSIZ) {
    return Fail(f, EINVAL,
                "'" + n + "': invalid interface name (1 to " + std::to_string(IFNAMSIZ - 1) +
                    " characters)",
                true);
  }
  // Protocol 0: receive nothing until bind(), so no frame from another
  // interface can slip in before the socket is bound to ours.
  st->fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (st->fd < 0) {
    int e = errno;
    if (e == EPERM || e == EACCES) {
      return Fail(f, e, n + ": permission denied: AF_PACKET needs CAP_NET_RAW", true);
    }
    return Fail(f, e, n + ": socket(AF_PACKET)");
  }

  ifreq ifr;
  FillIfreq(&ifr, ifname);
  if (ioctl(st->fd, SIOCGIFINDEX, &ifr) < 0) {
    int e = errno;
    if (e == ENODEV) return Fail(f, e, n + ": no such interface", true);
    return Fail(f, e, n + ": SIOCGIFINDEX");
  }
  st->ifindex = ifr.ifr_ifindex;

  FillIfreq(&ifr, ifname);
  if (ioctl(st->fd, SIOCGIFHWADDR, &ifr) < 0) return Fail(f, errno, n + ": SIOCGIFHWADDR");
  int hatype = ifr.ifr_hwaddr.sa_family;
  if (hatype != ARPHRD_ETHER && hatype != ARPHRD_LOOPBACK) {
    return Fail(f, EPROTOTYPE,
                n + ": not an Ethernet interface (ARPHRD " + std::to_string(hatype) + ")",
                true);
  }
  std::memcpy(st->mac, ifr.ifr_hwaddr.sa_data, 6);

  FillIfreq(&ifr, ifname);
  if (ioctl(st->fd, SIOCGIFMTU, &ifr) < 0) return Fail(f, errno, n + ": SIOCGIFMTU");
  st->mtu = ifr.ifr_mtu;

  // Options that must be set before the rings exist.
  if (!SetIntOpt(st->fd, SOL_PACKET, PACKET_VERSION, TPACKET_V2)) {
    return Fail(f, errno, n + ": PACKET_VERSION TPACKET_V2");
  }
  // Skip a malformed TX frame (mark it available) instead of stopping the ring.
  if (!SetIntOpt(st->fd, SOL_PACKET, PACKET_LOSS, 1)) return Fail(f, errno, n + ": PACKET_LOSS");
  // Optional (Linux >= 4.20). Protocol-bound sockets do not see outgoing
  // frames anyway, but this makes it explicit.
  SetIntOpt(st->fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, 1);

  long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) page = 4096;
  unsigned blockSize =
      frameSize > static_cast<unsigned>(page) ? frameSize : static_cast<unsigned>(page);
  st->rx = RingReq(rxBytes, blockSize, frameSize);
  st->tx = RingReq(txBytes, blockSize, frameSize);

  // TX frames hold skb memory (charged to sk_wmem_alloc) until the driver
  // frees them; with the default SO_SNDBUF a non-blocking send() stops early
  // with a partial count. Make room for the whole TX ring.
  size_t txLen = size_t(st->tx.tp_block_size) * st->tx.tp_block_nr;
  int sndbuf = txLen > size_t(INT32_MAX / 2) ? INT32_MAX / 2 : static_cast<int>(txLen);
  if (!SetIntOpt(st->fd, SOL_SOCKET, SO_SNDBUFFORCE, sndbuf)) {
    SetIntOpt(st->fd, SOL_SOCKET, SO_SNDBUF, sndbuf);
  }

  if (setsockopt(st->fd, SOL_PACKET, PACKET_RX_RING, &st->rx, sizeof st->rx) < 0) {
    return Fail(f, errno,
                n + ": PACKET_RX_RING (" + std::to_string(st->rx.tp_frame_nr) + " x " +
                    std::to_string(frameSize) + " bytes)");
  }
  if (setsockopt(st->fd, SOL_PACKET, PACKET_TX_RING, &st->tx, sizeof st->tx) < 0) {
    return Fail(f, errno,
                n + ": PACKET_TX_RING (" + std::to_string(st->tx.tp_frame_nr) + " x " +
                    std::to_string(frameSize) + " bytes)");
  }

  // One mapping: the RX ring first, the TX ring right after it.
  st->mapLen = size_t(st->rx.tp_block_size) * st->rx.tp_block_nr + txLen;
  st->addr = mmap(nullptr, st->mapLen, PROT_READ | PROT_WRITE, MAP_SHARED, st->fd, 0);
  if (st->addr == MAP_FAILED) return Fail(f, errno, n + ": mmap of the packet rings");

  if (fan.enabled && fan.id != 0) {
    std::vector<sock_filter> dropAll{BPF_STMT(BPF_RET | BPF_K, 0)};
    if (!SetFilter(st->fd, SOL_SOCKET, SO_ATTACH_FILTER, dropAll)) {
      return Fail(f, errno, n + ": SO_ATTACH_FILTER");
    }
  }

  sockaddr_ll sll{};
  sll.sll_family = AF_PACKET;
  sll.sll_protocol = htons(kEthPAoe);
  sll.sll_ifindex = st->ifindex;
  if (bind(st->fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) < 0) {
    int e = errno;
    if (e == ENODEV) return Fail(f, e, n + ": no such interface", true);
    return Fail(f, e, n + ": bind");
  }
  return !fan.enabled || JoinFanout(fan, n, st, f);
}

class PacketHandle : public Napi::ObjectWrap<PacketHandle>, private MappedFd {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "PacketHandle",
                       {
                           InstanceMethod<&PacketHandle::Kick>("kick"),
                           InstanceMethod<&PacketHandle::SetSteering>("setSteering"),
                           InstanceMethod<&PacketHandle::Stats>("stats"),
                           InstanceMethod<&PacketHandle::StartPoll>("startPoll"),
                           InstanceMethod<&PacketHandle::SetPollEvents>("setPollEvents"),
                           InstanceMethod<&PacketHandle::Close>("close"),
                       });
  }

  PacketHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PacketHandle>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 4 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsNumber() ||
        !info[3].IsNumber()) {
      throw Napi::TypeError::New(
          env,
          "openPacket(ifname: string, rxRingBytes: number, txRingBytes: number, frameSize: number[, fanout])");
    }
    ifname_ = info[0].As<Napi::String>().Utf8Value();
    double rxBytes = info[1].As<Napi::Number>().DoubleValue();
    double txBytes = info[2].As<Napi::Number>().DoubleValue();
    double frameSize = info[3].As<Napi::Number>().DoubleValue();
    if (!(rxBytes >= 1 && rxBytes <= double(kMaxRingBytes)) ||
        !(txBytes >= 1 && txBytes <= double(kMaxRingBytes))) {
      throw Napi::RangeError::New(env, ifname_ + ": ring sizes must be between 1 byte and 1 GiB");
    }
    unsigned fs = static_cast<unsigned>(frameSize);
    if (double(fs) != frameSize || fs < 128 || fs > (1u << 22) || (fs & (fs - 1)) != 0) {
      throw Napi::RangeError::New(
          env, ifname_ + ": frameSize must be a power of two between 128 and 4 MiB");
    }

    FanoutRequest fan;
    if (info.Length() > 4 && info[4].IsObject()) {
      Napi::Object o = info[4].As<Napi::Object>();
      Napi::Value id = o.Get("id");
      Napi::Value prog = o.Get("program");
      if (!id.IsNumber() || !prog.IsBuffer()) {
        throw Napi::TypeError::New(env, "fanout must be {id: number, program: Buffer}");
      }
      fan.enabled = true;
      fan.id = id.As<Napi::Number>().Int32Value();
      Napi::Buffer<uint8_t> b = prog.As<Napi::Buffer<uint8_t>>();
      size_t count = b.Length() / sizeof(sock_filter);
      bool needProgram = fan.id == 0;
      if (fan.id < 0 || fan.id > 0xffff || (needProgram && count == 0) || count > BPF_MAXINSNS ||
          b.Length() % sizeof(sock_filter) != 0) {
        throw Napi::RangeError::New(env, ifname_ + ": bad fanout id or steering program");
      }
      fan.program.resize(count);
      std::memcpy(fan.program.data(), b.Data(), b.Length());
    }

    OpenState st;
    OpenFailure fail;
    if (!DoOpen(ifname_, size_t(rxBytes), size_t(txBytes), fs, fan, &st, &fail)) {
      if (st.addr != MAP_FAILED) munmap(st.addr, st.mapLen);
      if (st.fd >= 0) close(st.fd);
      if (fail.custom) throw CodedError(env, fail.err, fail.msg);
      throw ErrnoError(env, fail.err, fail.msg);
    }
    fd_ = st.fd;
    ifindex_ = st.ifindex;
    map_.Own(st.addr, st.mapLen);  // both rings, in one mmap

    size_t rxLen = size_t(st.rx.tp_block_size) * st.rx.tp_block_nr;
    size_t txLen = size_t(st.tx.tp_block_size) * st.tx.tp_block_nr;
    char* base = static_cast<char*>(st.addr);
    Napi::ArrayBuffer rxAb = map_.Expose(env, base, rxLen);
    Napi::ArrayBuffer txAb = map_.Expose(env, base + rxLen, txLen);

    auto ro = napi_enumerable;
    Napi::Object self = info.This().As<Napi::Object>();
    self.DefineProperties({
        Napi::PropertyDescriptor::Value("fd", Napi::Number::New(env, fd_), ro),
        Napi::PropertyDescriptor::Value("ifindex", Napi::Number::New(env, ifindex_), ro),
        Napi::PropertyDescriptor::Value("ifname", Napi::String::New(env, ifname_), ro),
        Napi::PropertyDescriptor::Value("mac", Napi::Buffer<uint8_t>::Copy(env, st.mac, 6), ro),
        Napi::PropertyDescriptor::Value("mtu", Napi::Number::New(env, st.mtu), ro),
        Napi::PropertyDescriptor::Value("fanoutId", Napi::Number::New(env, st.fanoutId), ro),
        Napi::PropertyDescriptor::Value("rxRing", rxAb, ro),
        Napi::PropertyDescriptor::Value("rxFrameSize", Napi::Number::New(env, st.rx.tp_frame_size),
                                        ro),
        Napi::PropertyDescriptor::Value("rxFrameCount", Napi::Number::New(env, st.rx.tp_frame_nr),
                                        ro),
        Napi::PropertyDescriptor::Value("txRing", txAb, ro),
        Napi::PropertyDescriptor::Value("txFrameSize", Napi::Number::New(env, st.tx.tp_frame_size),
                                        ro),
        Napi::PropertyDescriptor::Value("txFrameCount", Napi::Number::New(env, st.tx.tp_frame_nr),
                                        ro),
    });

    // Close the poll handle and the socket when the environment (a worker
    // thread, or the main thread at exit) goes away without close().
    poller_.AddCleanupHook(env);
  }

 private:
  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseNow();
    return info.Env().Undefined();
  }

  // PACKET_FANOUT_DATA: a new steering program for the whole fanout group.
  Napi::Value SetSteering(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsBuffer()) {
      throw Napi::TypeError::New(env, "setSteering(program: Buffer)");
    }
    Napi::Buffer<uint8_t> b = info[0].As<Napi::Buffer<uint8_t>>();
    size_t count = b.Length() / sizeof(sock_filter);
    if (count == 0 || count > BPF_MAXINSNS || b.Length() % sizeof(sock_filter) != 0) {
      throw Napi::RangeError::New(env, ifname_ + ": bad steering program");
    }
    std::vector<sock_filter> prog(count);
    std::memcpy(prog.data(), b.Data(), b.Length());
    if (closed_) return Napi::Number::New(env, EBADF);
    return Napi::Number::New(env, SetFilter(fd_, SOL_PACKET, PACKET_FANOUT_DATA, prog) ? 0 : errno);
  }

  Napi::Value Kick(const Napi::CallbackInfo& info) {
    if (closed_) return Napi::Number::New(info.Env(), EBADF);
    ssize_t r = send(fd_, nullptr, 0, MSG_DONTWAIT);
    return Napi::Number::New(info.Env(), r < 0 ? errno : 0);
  }

  Napi::Value Stats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed_) throw CodedError(env, EBADF, ifname_ + ": socket is closed");
    tpacket_stats s{};
    socklen_t len = sizeof s;
    if (getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &s, &len) < 0) {
      throw ErrnoError(env, errno, ifname_ + ": PACKET_STATISTICS");
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("packets", Napi::Number::New(env, s.tp_packets));
    o.Set("drops", Napi::Number::New(env, s.tp_drops));
    return o;
  }

  static int EventsFrom(const Napi::CallbackInfo& info, size_t i) {
    return info.Length() > i && info[i].ToBoolean().Value() ? UV_READABLE : 0;
  }

  void ApplyEvents(Napi::Env env) {
    int r = poller_.SetEvents(events_);
    if (r < 0) throw ErrnoError(env, -r, ifname_ + ": uv_poll_start");
  }

  // startPoll(cb, readable): cb(status, events) runs on the event loop.
  // status is 0, or -errno when the socket reported an error (e.g. -ENETDOWN
  // when the link went down); events has bit 1 set when readable.
  Napi::Value StartPoll(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed_) throw CodedError(env, EBADF, ifname_ + ": socket is closed");
    if (poller_.polling()) throw Napi::Error::New(env, ifname_ + ": already polling");
    if (info.Length() < 1 || !info[0].IsFunction()) {
      throw Napi::TypeError::New(env, "startPoll(cb, readable)");
    }
    poller_.Start(env, fd_, info[0].As<Napi::Function>(), "aoed.PacketSocket", ifname_);
    events_ = EventsFrom(info, 1);
    ApplyEvents(env);
    return env.Undefined();
  }

  Napi::Value SetPollEvents(const Napi::CallbackInfo& info) {
    if (closed_) return info.Env().Undefined();
    int ev = EventsFrom(info, 0);
    if (ev != events_) {
      events_ = ev;
      ApplyEvents(info.Env());
    }
    return info.Env().Undefined();
  }

  void OnPoll(int status, int events) override {
    int st = 0;
    if (status < 0) {
      // libuv stops the watcher on POLLERR. For a packet socket that means a
      // pending socket error (ENETDOWN when the link goes down, or when bound
      // while down): read it (which clears it) and keep polling.
      int soerr = 0;
      socklen_t len = sizeof soerr;
      if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr != 0) {
        st = -soerr;
        if (events_ != 0) poller_.SetEvents(events_);
      } else {
        st = status;
        events_ = 0;  // the watcher stays stopped; JS may re-arm it
      }
      events = 0;
    }
    Napi::Env env = Env();
    poller_.Call(Value(), {Napi::Number::New(env, st), Napi::Number::New(env, events)});
  }

  std::string ifname_;
  int ifindex_ = 0;
  int events_ = 0;
};

// interfaceLink(ifname) -> {ifindex, mtu, up} | null, without needing
// CAP_NET_RAW. up: IFF_UP and IFF_RUNNING (set up, and the carrier is on).
Napi::Value InterfaceLink(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    throw Napi::TypeError::New(env, "interfaceLink(ifname: string)");
  }
  std::string name = info[0].As<Napi::String>().Utf8Value();
  ifreq ifr;
  if (!FillIfreq(&ifr, name)) return env.Null();
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw ErrnoError(env, errno, name + ": socket(AF_UNIX)");
  int r = ioctl(fd, SIOCGIFINDEX, &ifr);
  int e = errno;
  int ifindex = ifr.ifr_ifindex;
  int mtu = 0;
  if (r == 0) {
    r = ioctl(fd, SIOCGIFMTU, &ifr);
    e = errno;
    mtu = ifr.ifr_mtu;
  }
  if (r == 0) {
    r = ioctl(fd, SIOCGIFFLAGS, &ifr);
    e = errno;
  }
  close(fd);
  if (r < 0) {
    if (e == ENODEV) return env.Null();
    throw ErrnoError(env, e, name + ": SIOCGIFINDEX/SIOCGIFMTU/SIOCGIFFLAGS");
  }
  const int running = IFF_UP | IFF_RUNNING;
  Napi::Object out = Napi::Object::New(env);
  out.Set("ifindex", Napi::Number::New(env, ifindex));
  out.Set("mtu", Napi::Number::New(env, mtu));
  out.Set("up", Napi::Boolean::New(env, (ifr.ifr_flags & running) == running));
  return out;
}

Napi::Value SchedYield(const Napi::CallbackInfo& info) {
  sched_yield();  // cannot fail on Linux
  return info.Env().Undefined();
}

}  // namespace

void InitPacket(Napi::Env env, Napi::Object exports) {
  ExportWithFactory<PacketHandle>(env, exports, "PacketHandle", "openPacket");
  exports.Set("interfaceLink", Napi::Function::New<InterfaceLink>(env, "interfaceLink"));
  exports.Set("schedYield", Napi::Function::New<SchedYield>(env, "schedYield"));
}
