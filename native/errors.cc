#include "errors.h"

#include <uv.h>

#include <cstring>

Napi::Error ErrnoError(Napi::Env env, int err, const std::string& what) {
  const char* code = uv_err_name(-err);
  std::string msg = what + ": " + std::strerror(err) + " (" + code + ")";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  e.Set("errno", Napi::Number::New(env, -err));
  return e;
}

Napi::Error CodedError(Napi::Env env, int err, const std::string& msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, uv_err_name(-err)));
  e.Set("errno", Napi::Number::New(env, -err));
  return e;
}
