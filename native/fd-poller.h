// A uv_poll watcher on one fd that calls a JavaScript function, shared by the
// packet socket (packet.cc) and io_uring (uring.cc) handles. It also owns the
// async cleanup hook that lets go of its owner's native resources when the
// environment (a worker thread, or the main thread at exit) goes away without
// close(): the hook is removed only once the uv handle has finished closing,
// so Node does not tear the loop down under it.

#ifndef AOED_NATIVE_FD_POLLER_H_
#define AOED_NATIVE_FD_POLLER_H_

#include <napi.h>
#include <uv.h>

#include <initializer_list>
#include <memory>
#include <string>

class FdPoller {
 public:
  class Owner {
   public:
    // The fd is ready (status 0) or libuv reported an error (status < 0).
    // Runs on the event loop inside a HandleScope; call Call() from here.
    virtual void OnPoll(int status, int events) = 0;
    // Stop polling (Stop()) and free the native resources. Uses no JavaScript.
    virtual void ReleaseNative() = 0;

   protected:
    ~Owner() = default;
  };

  explicit FdPoller(Owner* owner) : owner_(owner) {}
  ~FdPoller();
  FdPoller(const FdPoller&) = delete;
  FdPoller& operator=(const FdPoller&) = delete;

  // From then on the environment going away closes the handle and calls
  // owner->ReleaseNative(). Call it once the owner is fully constructed.
  void AddCleanupHook(Napi::Env env);

  bool polling() const { return handle_ != nullptr; }

  // Watches fd (no events yet: see SetEvents) for cb, run in an async context
  // named resource. With ownFd the poller closes fd along with the handle.
  // Throws; what prefixes the error message.
  void Start(Napi::Env env, int fd, Napi::Function cb, const char* resource,
             const std::string& what, bool ownFd = false);
  // UV_READABLE | UV_WRITABLE, or 0 to stop watching: 0 or a libuv error.
  int SetEvents(int events);
  // Whether an active watcher keeps the event loop alive.
  void Ref();
  void Unref();
  // cb(...args) with recv as this; an exception is fatal, as with any
  // callback from the event loop.
  void Call(napi_value recv, std::initializer_list<napi_value> args);

  // Closes the handle. Uses no JavaScript, so it may run from a finalizer.
  void Stop() { CloseHandle(nullptr); }
  // For close() from JavaScript: also removes the cleanup hook and drops cb.
  void Close();

 private:
  struct Handle;

  static void EnvCleanup(napi_async_cleanup_hook_handle hook, void* arg);
  static void OnReady(uv_poll_t* h, int status, int events);
  void CloseHandle(napi_async_cleanup_hook_handle done);
  void DropCallback();

  Owner* owner_;
  napi_env env_ = nullptr;
  Handle* handle_ = nullptr;
  bool ref_ = true;
  bool inCallback_ = false;
  Napi::FunctionReference cb_;
  std::unique_ptr<Napi::AsyncContext> ctx_;
  napi_async_cleanup_hook_handle hook_ = nullptr;
};

#endif  // AOED_NATIVE_FD_POLLER_H_
