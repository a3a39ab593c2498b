// Shared machinery of the addon: a system-call error type, the async job runner, and argument helpers.
//
// Invariants:
//  - Every exported call returns a Promise; the system calls run on a libuv worker thread (Napi::AsyncWorker)
//    and never on the JS thread. One exception: dmProbe (dm.cc) is synchronous, because a backend is chosen
//    before asynchronous work starts; it is one non-blocking open and one DM_VERSION, answered at once.
//  - Work functions touch no JS values: they receive plain C++ copies of the arguments and return a closure
//    that builds the JS result on the JS thread.
//  - A failed system call becomes a JS Error whose `code` is the errno's symbolic name (from the errno value,
//    never from message text), with `errno` (positive number), `syscall`, and `device` / `path` when known.
//  - No policy: nothing here retries, waits or decides; it translates calls. dmProbe too: it returns what the
//    kernel answered, and TypeScript (packages/dm/src/probe.ts) decides what that means.
#pragma once

#include <napi.h>

#include <cerrno>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>

namespace tj {

struct SysError {
  int err;               // positive errno value
  std::string syscall;   // e.g. "DM_DEV_CREATE", "open", "LOOP_CONFIGURE"
  std::string device;    // dm device name, when the call concerns one
  std::string path;      // file or node path, when the call concerns one
};

[[noreturn]] inline void fail(int err, std::string syscall, std::string device = {}, std::string path = {}) {
  throw SysError{err, std::move(syscall), std::move(device), std::move(path)};
}

// Builds the JS value of a result on the JS thread.
using Builder = std::function<Napi::Value(Napi::Env)>;
// Runs on a worker thread; returns a builder or throws SysError.
using Work = std::function<Builder()>;

Napi::Error MakeSysError(Napi::Env env, const SysError& e);

class Job : public Napi::AsyncWorker {
 public:
  Job(Napi::Env env, const char* name, Work work)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      builder_ = work_();
    } catch (const SysError& e) {
      failed_ = true;
      error_ = e;
    } catch (const std::exception& e) {
      failed_ = true;
      error_ = SysError{EIO, std::string("internal: ") + e.what(), {}, {}};
    }
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    if (failed_) {
      deferred_.Reject(MakeSysError(env, error_).Value());
      return;
    }
    try {
      deferred_.Resolve(builder_ ? builder_(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  Builder builder_;
  bool failed_ = false;
  SysError error_{};
};

inline Napi::Promise Queue(Napi::Env env, const char* name, Work work) {
  auto* job = new Job(env, name, std::move(work));
  Napi::Promise p = job->Promise();
  job->Queue();
  return p;
}

// ---- argument helpers (programmer misuse is a synchronous TypeError) ----
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* what);
Napi::Object ArgObjectOpt(const Napi::CallbackInfo& info, size_t i);
bool OptBool(const Napi::Object& o, const char* key, bool dflt = false);
std::string OptString(const Napi::Object& o, const char* key, const std::string& dflt = {});
uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* what);
uint64_t ToU64(const Napi::Env& env, const Napi::Value& v, const char* what);
Napi::Value U64Value(Napi::Env env, uint64_t v);  // a Number when safe, else a BigInt

// RAII file descriptor.
struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  ~Fd();
  int get() const { return fd; }
};
Fd OpenOrFail(const std::string& path, int flags, const std::string& device = {});

Napi::Object Init(Napi::Env env, Napi::Object exports);
void InitDm(Napi::Env env, Napi::Object exports);
void InitSys(Napi::Env env, Napi::Object exports);
void InitPlan(Napi::Env env, Napi::Object exports);

}  // namespace tj
