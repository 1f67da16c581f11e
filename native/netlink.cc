// Link events from rtnetlink, for src/net/link-monitor.ts:
//   watchLinks(cb) -> LinkWatch
//       A NETLINK_ROUTE socket subscribed to RTMGRP_LINK, watched with
//       uv_poll. cb(status, events) runs on the event loop with status 0 and
//       events, an array of {ifindex, name, mtu, up, deleted} (RTM_NEWLINK and
//       RTM_DELLINK in the order the kernel sent them; up: IFF_UP and
//       IFF_RUNNING, set up and the carrier on), or with status
//       -ENOBUFS when the kernel dropped events because the socket buffer was
//       full (JavaScript then looks at every link it cares about again; the
//       watch goes on), or with another negative errno, after which the
//       watch has stopped.
//     ref(), unref()  of the poll handle
//     close()         idempotent
// One socket serves the whole daemon; it sees the links of the network
// namespace it was opened in.

#include <napi.h>
#include <uv.h>

#include "errors.h"
#include "factory.h"
#include "fd-poller.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

namespace {

// Room for a burst of messages per recv(); larger link messages are truncated
// (MSG_TRUNC) and only lose attributes past the ones read here.
constexpr size_t kRecvBytes = 64 * 1024;
// Asked for, not forced: enough for a few hundred link messages at once.
constexpr int kRcvBuf = 1 << 20;

struct LinkEvent {
  int ifindex;
  std::string name;
  unsigned mtu;
  bool up;
  bool deleted;
};

// Parses the link messages of one datagram; anything else is skipped.
void ParseLinks(const char* buf, size_t size, std::vector<LinkEvent>* out) {
  unsigned len = static_cast<unsigned>(size);
  for (auto* nh = reinterpret_cast<const nlmsghdr*>(buf); NLMSG_OK(nh, len);
       nh = NLMSG_NEXT(nh, len)) {
    if (nh->nlmsg_type != RTM_NEWLINK && nh->nlmsg_type != RTM_DELLINK) continue;
    if (nh->nlmsg_len < NLMSG_LENGTH(sizeof(ifinfomsg))) continue;
    auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(nh));
    const unsigned running = IFF_UP | IFF_RUNNING;
    LinkEvent ev{ifi->ifi_index, "", 0, (ifi->ifi_flags & running) == running,
                 nh->nlmsg_type == RTM_DELLINK};
    int alen = static_cast<int>(IFLA_PAYLOAD(nh));
    for (auto* a = IFLA_RTA(ifi); RTA_OK(a, alen); a = RTA_NEXT(a, alen)) {
      if (a->rta_type == IFLA_IFNAME) {
        ev.name.assign(static_cast<const char*>(RTA_DATA(a)),
                       strnlen(static_cast<const char*>(RTA_DATA(a)), RTA_PAYLOAD(a)));
      } else if (a->rta_type == IFLA_MTU && RTA_PAYLOAD(a) >= sizeof(unsigned)) {
        std::memcpy(&ev.mtu, RTA_DATA(a), sizeof(unsigned));
      }
    }
    out->push_back(std::move(ev));
  }
}

class LinkWatch : public Napi::ObjectWrap<LinkWatch>, private FdPoller::Owner {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "LinkWatch",
                       {
                           InstanceMethod<&LinkWatch::Ref>("ref"),
                           InstanceMethod<&LinkWatch::Unref>("unref"),
                           InstanceMethod<&LinkWatch::Close>("close"),
                       });
  }

  LinkWatch(const Napi::CallbackInfo& info) : Napi::ObjectWrap<LinkWatch>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsFunction()) {
      throw Napi::TypeError::New(env, "watchLinks(cb: (status, events) => void)");
    }
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (fd < 0) throw ErrnoError(env, errno, "rtnetlink: socket(AF_NETLINK)");
    int rcvbuf = kRcvBuf;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);  // best effort
    sockaddr_nl sa{};
    sa.nl_family = AF_NETLINK;
    sa.nl_groups = RTMGRP_LINK;
    if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0) {
      int e = errno;
      close(fd);
      throw ErrnoError(env, e, "rtnetlink: bind(RTMGRP_LINK)");
    }
    // From here the poller owns the fd and closes it with the handle.
    poller_.Start(env, fd, info[0].As<Napi::Function>(), "aoed.LinkWatch", "rtnetlink",
                  /*ownFd=*/true);
    fd_ = fd;
    int r = poller_.SetEvents(UV_READABLE);
    if (r < 0) {
      poller_.Close();
      throw ErrnoError(env, -r, "rtnetlink: uv_poll_start");
    }
    poller_.AddCleanupHook(env);
  }

  ~LinkWatch() override { ReleaseNative(); }

 private:
  void ReleaseNative() override {
    if (fd_ < 0) return;
    fd_ = -1;
    poller_.Stop();  // closes the fd
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    if (fd_ >= 0) {
      poller_.Close();
      ReleaseNative();
    }
    return info.Env().Undefined();
  }

  void Ref(const Napi::CallbackInfo&) { poller_.Ref(); }
  void Unref(const Napi::CallbackInfo&) { poller_.Unref(); }

  void OnPoll(int status, int) override {
    Napi::Env env = Env();
    int st = status;
    if (status < 0) {
      // libuv stops the watcher on POLLERR. Here that is a pending socket
      // error: ENOBUFS, the kernel dropped events. Reading it clears it; the
      // queued events are still read, and the watch goes on. Any other error
      // leaves the watcher stopped.
      int soerr = 0;
      socklen_t len = sizeof soerr;
      if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr != 0) {
        st = -soerr;
        poller_.SetEvents(UV_READABLE);
      }
    }
    std::vector<LinkEvent> events;
    if (st == 0 || st == -ENOBUFS) {
      std::vector<char> buf(kRecvBytes);
      for (;;) {
        sockaddr_nl from{};
        socklen_t fromLen = sizeof from;
        ssize_t n = recvfrom(fd_, buf.data(), buf.size(), 0,
                             reinterpret_cast<sockaddr*>(&from), &fromLen);
        if (n < 0) {
          if (errno == EINTR) continue;
          if (errno == ENOBUFS) {
            st = -ENOBUFS;  // events were lost; keep reading what is queued
            continue;
          }
          break;  // EAGAIN: drained
        }
        if (from.nl_pid != 0) continue;  // only the kernel speaks for links
        ParseLinks(buf.data(), static_cast<size_t>(n), &events);
      }
    }
    Napi::Array arr = Napi::Array::New(env, events.size());
    for (size_t i = 0; i < events.size(); i++) {
      const LinkEvent& e = events[i];
      Napi::Object o = Napi::Object::New(env);
      o.Set("ifindex", Napi::Number::New(env, e.ifindex));
      o.Set("name", Napi::String::New(env, e.name));
      o.Set("mtu", Napi::Number::New(env, e.mtu));
      o.Set("up", Napi::Boolean::New(env, e.up));
      o.Set("deleted", Napi::Boolean::New(env, e.deleted));
      arr.Set(static_cast<uint32_t>(i), o);
    }
    poller_.Call(Value(), {Napi::Number::New(env, st), arr});
  }

  int fd_ = -1;  // owned by poller_, which closes it
  FdPoller poller_{this};
};

}  // namespace

void InitNetlink(Napi::Env env, Napi::Object exports) {
  ExportWithFactory<LinkWatch>(env, exports, "LinkWatch", "watchLinks");
}
