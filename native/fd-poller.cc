#include "fd-poller.h"

#include "errors.h"

#include <unistd.h>

// Outlives the FdPoller while libuv finishes closing it.
struct FdPoller::Handle {
  uv_poll_t poll;
  FdPoller* poller;                     // nullptr once closing
  int ownedFd;                          // closed with the handle, or -1
  napi_async_cleanup_hook_handle done;  // removed once the handle is closed
};

FdPoller::~FdPoller() {
  // Reached from the owner's finalizer (never while polling: the callback
  // reference keeps the owner alive until close()). No JS calls here.
  CloseHandle(nullptr);
  if (hook_ != nullptr) napi_remove_async_cleanup_hook(hook_);
  if (ctx_) (void)ctx_.release();  // napi_async_destroy is not safe here
}

void FdPoller::AddCleanupHook(Napi::Env env) {
  env_ = env;
  if (napi_add_async_cleanup_hook(env, &FdPoller::EnvCleanup, this, &hook_) != napi_ok) {
    hook_ = nullptr;
  }
}

void FdPoller::EnvCleanup(napi_async_cleanup_hook_handle hook, void* arg) {
  auto* self = static_cast<FdPoller*>(arg);
  self->hook_ = nullptr;
  self->CloseHandle(hook);
  self->owner_->ReleaseNative();
}

void FdPoller::Start(Napi::Env env, int fd, Napi::Function cb, const char* resource,
                     const std::string& what, bool ownFd) {
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    if (ownFd) close(fd);
    throw Napi::Error::New(env, "napi_get_uv_event_loop failed");
  }
  auto* h = new Handle{{}, this, ownFd ? fd : -1, nullptr};
  int r = uv_poll_init(loop, &h->poll, fd);
  if (r < 0) {
    if (ownFd) close(fd);
    delete h;
    throw ErrnoError(env, -r, what + ": uv_poll_init");
  }
  h->poll.data = h;
  env_ = env;
  handle_ = h;
  if (!ref_) uv_unref(reinterpret_cast<uv_handle_t*>(&h->poll));
  cb_ = Napi::Persistent(cb);
  ctx_ = std::make_unique<Napi::AsyncContext>(env, resource);
}

int FdPoller::SetEvents(int events) {
  if (handle_ == nullptr) return 0;
  return events != 0 ? uv_poll_start(&handle_->poll, events, &FdPoller::OnReady)
                     : uv_poll_stop(&handle_->poll);
}

void FdPoller::Ref() {
  ref_ = true;
  if (handle_ != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(&handle_->poll));
}

void FdPoller::Unref() {
  ref_ = false;
  if (handle_ != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(&handle_->poll));
}

void FdPoller::OnReady(uv_poll_t* h, int status, int events) {
  FdPoller* self = static_cast<Handle*>(h->data)->poller;
  if (self == nullptr) return;
  Napi::HandleScope scope(self->env_);
  self->owner_->OnPoll(status, events);
}

void FdPoller::Call(napi_value recv, std::initializer_list<napi_value> args) {
  if (cb_.IsEmpty() || !ctx_) return;
  inCallback_ = true;
  try {
    cb_.MakeCallback(recv, args, *ctx_);
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env_, e.Value());
  }
  inCallback_ = false;
  if (handle_ == nullptr) DropCallback();  // close() was called from inside the callback
}

void FdPoller::Close() {
  if (hook_ != nullptr) {
    napi_remove_async_cleanup_hook(hook_);
    hook_ = nullptr;
  }
  CloseHandle(nullptr);
  if (!inCallback_) DropCallback();  // else Call() drops it once the callback returns
}

// If done is given it is removed once the handle has finished closing (at
// once when there is none).
void FdPoller::CloseHandle(napi_async_cleanup_hook_handle done) {
  if (handle_ == nullptr) {
    if (done != nullptr) napi_remove_async_cleanup_hook(done);
    return;
  }
  Handle* h = handle_;
  handle_ = nullptr;
  h->poller = nullptr;
  h->done = done;
  uv_poll_stop(&h->poll);
  uv_close(reinterpret_cast<uv_handle_t*>(&h->poll), [](uv_handle_t* uh) {
    Handle* q = static_cast<Handle*>(uh->data);
    napi_async_cleanup_hook_handle d = q->done;
    if (q->ownedFd >= 0) close(q->ownedFd);  // only now: libuv may still hold it in its epoll set
    delete q;
    if (d != nullptr) napi_remove_async_cleanup_hook(d);
  });
}

void FdPoller::DropCallback() {
  cb_.Reset();
  ctx_.reset();
}
