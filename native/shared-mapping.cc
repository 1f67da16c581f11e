#include "shared-mapping.h"

#include <sys/mman.h>

// Counted: one share for the handle, one per exposed ArrayBuffer.
struct SharedMapping::Regions {
  std::vector<std::pair<void*, size_t>> list;
  int refs = 1;
  void Unmap() {
    for (auto& [addr, len] : list) munmap(addr, len);
    list.clear();
  }
  void Drop() {
    if (--refs == 0) {
      Unmap();
      delete this;
    }
  }
};

SharedMapping::SharedMapping() : regions_(new Regions) {}

void SharedMapping::Own(void* addr, size_t len) {
  if (regions_ != nullptr) regions_->list.emplace_back(addr, len);
}

void SharedMapping::Finalize(Napi::Env, void*, Regions* r) { r->Drop(); }

Napi::ArrayBuffer SharedMapping::Expose(Napi::Env env, void* addr, size_t len) {
  regions_->refs++;
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, addr, len, &SharedMapping::Finalize, regions_);
  views_.push_back(Napi::Persistent(ab));
  return ab;
}

void SharedMapping::DetachAndUnmap() {
  for (Napi::Reference<Napi::ArrayBuffer>& r : views_) {
    if (r.IsEmpty()) continue;
    Napi::ArrayBuffer ab = r.Value();
    if (!ab.IsEmpty() && !ab.IsDetached()) ab.Detach();
    r.Reset();
  }
  views_.clear();
  if (regions_ != nullptr) regions_->Unmap();
}

void SharedMapping::Release() {
  if (regions_ == nullptr) return;
  Regions* r = regions_;
  regions_ = nullptr;
  r->Drop();  // unmaps now only if every ArrayBuffer is already gone
}
