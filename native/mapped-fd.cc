#include "mapped-fd.h"

#include <unistd.h>

void MappedFd::ReleaseNative() {
  if (closed_) return;
  closed_ = true;
  poller_.Stop();
  map_.Release();
  if (fd_ >= 0) {
    close(fd_);
    fd_ = -1;
  }
}

void MappedFd::CloseNow() {
  if (closed_) return;
  map_.DetachAndUnmap();
  poller_.Close();
  ReleaseNative();
}
