// Errors thrown to JavaScript by every part of the addon.

#ifndef AOED_NATIVE_ERRORS_H_
#define AOED_NATIVE_ERRORS_H_

#include <napi.h>

#include <string>

// An Error whose message is "<what>: <strerror> (<CODE>)", with .code and
// .errno (negative, like Node's own system errors) set.
Napi::Error ErrnoError(Napi::Env env, int err, const std::string& what);

// Same, with a caller-chosen message (e.g. "eth9: no such interface").
Napi::Error CodedError(Napi::Env env, int err, const std::string& msg);

#endif  // AOED_NATIVE_ERRORS_H_
