// Memory a handle mmapped from a kernel object (a packet socket's rings, an
// io_uring's rings) and shows to JavaScript as external ArrayBuffers, shared
// by the handle and those ArrayBuffers. close() detaches the ArrayBuffers
// first, so JavaScript can no longer reach the memory, and unmaps at once;
// a handle garbage collected without close() lets go of its share, and the
// memory is unmapped when the last ArrayBuffer over it is collected too.

#ifndef AOED_NATIVE_SHARED_MAPPING_H_
#define AOED_NATIVE_SHARED_MAPPING_H_

#include <napi.h>

#include <cstddef>
#include <utility>
#include <vector>

class SharedMapping {
 public:
  SharedMapping();
  ~SharedMapping() { Release(); }
  SharedMapping(const SharedMapping&) = delete;
  SharedMapping& operator=(const SharedMapping&) = delete;

  // Takes over a region the caller mmapped: unmapped with the rest.
  void Own(void* addr, size_t len);
  // An external ArrayBuffer over [addr, addr + len) of an owned region,
  // which keeps the regions mapped while it lives.
  Napi::ArrayBuffer Expose(Napi::Env env, void* addr, size_t len);
  // For close(): detaches every exposed ArrayBuffer, unmaps every region now.
  void DetachAndUnmap();
  // The handle's share. Uses no JavaScript, so it may run from a finalizer. Idempotent.
  void Release();

 private:
  struct Regions;
  static void Finalize(Napi::Env, void*, Regions* r);

  Regions* regions_;
  std::vector<Napi::Reference<Napi::ArrayBuffer>> views_;
};

#endif  // AOED_NATIVE_SHARED_MAPPING_H_
