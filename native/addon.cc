// aoed_native: the project's only native code. Deliberately small and dumb:
// it owns file descriptors, mmaps and a libuv poll handle, and exposes raw
// memory to JavaScript. All AoE logic lives in TypeScript.

#include <napi.h>
#include <uv.h>

#include <cstring>
#include <string>

// An Error whose message is "<what>: <strerror> (<CODE>)", with .code and
// .errno (negative, like Node's own system errors) set.
Napi::Error ErrnoError(Napi::Env env, int err, const std::string& what) {
  const char* code = uv_err_name(-err);
  std::string msg = what + ": " + std::strerror(err) + " (" + code + ")";
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, code));
  e.Set("errno", Napi::Number::New(env, -err));
  return e;
}

// Same, with a caller-chosen message (e.g. "eth9: no such interface").
Napi::Error CodedError(Napi::Env env, int err, const std::string& msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("code", Napi::String::New(env, uv_err_name(-err)));
  e.Set("errno", Napi::Number::New(env, -err));
  return e;
}

void InitPacket(Napi::Env env, Napi::Object exports);
void InitBlockdev(Napi::Env env, Napi::Object exports);
void InitUring(Napi::Env env, Napi::Object exports);
void InitNotify(Napi::Env env, Napi::Object exports);
void InitMapped(Napi::Env env, Napi::Object exports);

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InitPacket(env, exports);
  InitBlockdev(env, exports);
  InitUring(env, exports);
  InitNotify(env, exports);
  InitMapped(env, exports);
  return exports;
}

NODE_API_MODULE(aoed_native, Init)
