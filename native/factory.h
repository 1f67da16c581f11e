// Exports an ObjectWrap class together with a plain factory function for it,
// so JavaScript calls openPacket(...) rather than new PacketHandle(...).

#ifndef AOED_NATIVE_FACTORY_H_
#define AOED_NATIVE_FACTORY_H_

#include <napi.h>

#include <vector>

// exports[className] = T::Define(env); exports[factory](...args) = new T(...args).
template <typename T>
void ExportWithFactory(Napi::Env env, Napi::Object exports, const char* className,
                       const char* factory) {
  Napi::Function ctor = T::Define(env);
  auto* ref = new Napi::FunctionReference(Napi::Persistent(ctor));
  env.AddCleanupHook([ref]() { delete ref; });
  exports.Set(className, ctor);
  auto make = [](const Napi::CallbackInfo& info) -> Napi::Value {
    std::vector<napi_value> args(info.Length());
    for (size_t i = 0; i < info.Length(); i++) args[i] = info[i];
    return static_cast<Napi::FunctionReference*>(info.Data())->New(args);
  };
  exports.Set(factory, Napi::Function::New(env, make, factory, ref));
}

#endif  // AOED_NATIVE_FACTORY_H_
