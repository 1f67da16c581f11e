#include "errors.h"

#include <uv.h>

#include <cerrno>
#include <cstring>

namespace {

// libuv's name for an errno; it has none for a few the addon throws.
const char* ErrnoName(int err) {
  if (err == ENOTBLK) return "ENOTBLK";
  return uv_err_name(-err);
}

}  // namespace

Napi::Error ErrnoError(Napi::Env env, int err, const std::string& what) {
  const char* code = ErrnoName(err);
  std::string msg = what + ": " + std::strerror(err) + " (" + code + ")";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  e.Set("errno", Napi::Number::New(env, -err));
  return e;
}

Napi::Error CodedError(Napi::Env env, int err, const std::string& msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, ErrnoName(err)));
  e.Set("errno", Napi::Number::New(env, -err));
  return e;
}
