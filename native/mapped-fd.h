// What the packet socket (packet.cc) and io_uring (uring.cc) handles share: a
// kernel object's fd, the memory mapped from it, the uv_poll watcher on it,
// and the order in which they are let go.

#ifndef AOED_NATIVE_MAPPED_FD_H_
#define AOED_NATIVE_MAPPED_FD_H_

#include "fd-poller.h"
#include "shared-mapping.h"

class MappedFd : private FdPoller::Owner {
 public:
  MappedFd(const MappedFd&) = delete;
  MappedFd& operator=(const MappedFd&) = delete;

 protected:
  MappedFd() = default;
  // Garbage collected without close(): the handle lets go of its share.
  ~MappedFd() { ReleaseNative(); }

  // Stops polling, drops the handle's share of the mapping, closes the fd.
  // Uses no JavaScript, so it may run from a finalizer or the env cleanup hook.
  void ReleaseNative() override;
  // close() from JavaScript: the ArrayBuffers are detached and the memory
  // unmapped at once, then everything else is let go.
  void CloseNow();

  int fd_ = -1;
  bool closed_ = false;
  SharedMapping map_;
  FdPoller poller_{this};
};

#endif  // AOED_NATIVE_MAPPED_FD_H_
