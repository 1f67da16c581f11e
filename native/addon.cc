// aoed_native: the project's only native code. Deliberately small and dumb:
// it owns file descriptors, mmaps and a libuv poll handle, and exposes raw
// memory to JavaScript. All AoE logic lives in TypeScript.

#include <napi.h>

void InitPacket(Napi::Env env, Napi::Object exports);
void InitBlockdev(Napi::Env env, Napi::Object exports);
void InitUring(Napi::Env env, Napi::Object exports);
void InitNotify(Napi::Env env, Napi::Object exports);
void InitMapped(Napi::Env env, Napi::Object exports);
void InitNetlink(Napi::Env env, Napi::Object exports);

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InitPacket(env, exports);
  InitBlockdev(env, exports);
  InitUring(env, exports);
  InitNotify(env, exports);
  InitMapped(env, exports);
  InitNetlink(env, exports);
  return exports;
}

NODE_API_MODULE(aoed_native, Init)
