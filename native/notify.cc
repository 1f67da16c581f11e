// sd_notify(3) transport for src/bin/sd-notify.ts: Node's dgram module has no
// AF_UNIX datagram sockets, so this one function sends the datagram.
//   sdNotify(socketPath, message) -> 0 or a (positive) errno
// socketPath is $NOTIFY_SOCKET: a filesystem path, or "@name" for an abstract
// socket. The message format and all policy live in TypeScript.

#include <napi.h>

#include <errno.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace {

Napi::Value SdNotify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) {
    throw Napi::TypeError::New(env, "sdNotify(socketPath: string, message: string)");
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::string message = info[1].As<Napi::String>().Utf8Value();

  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() < 2 || path.size() >= sizeof sa.sun_path || (path[0] != '/' && path[0] != '@')) {
    return Napi::Number::New(env, EINVAL);
  }
  std::memcpy(sa.sun_path, path.data(), path.size());
  socklen_t len = offsetof(sockaddr_un, sun_path) + path.size();
  if (path[0] == '@') {
    sa.sun_path[0] = '\0';  // abstract: the name is exactly len bytes, no NUL
  } else {
    len += 1;  // filesystem path: include the terminating NUL
  }

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Napi::Number::New(env, errno);
  ssize_t n;
  do {
    n = sendto(fd, message.data(), message.size(), MSG_NOSIGNAL,
               reinterpret_cast<const sockaddr*>(&sa), len);
  } while (n < 0 && errno == EINTR);
  int err = n < 0 ? errno : 0;
  close(fd);
  return Napi::Number::New(env, err);
}

}  // namespace

void InitNotify(Napi::Env env, Napi::Object exports) {
  exports.Set("sdNotify", Napi::Function::New<SdNotify>(env, "sdNotify"));
}
