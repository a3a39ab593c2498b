// Module entry point and the shared helpers declared in common.h.
#include "common.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <limits>

namespace tj {

Fd::~Fd() {
  if (fd >= 0) ::close(fd);
}

Fd OpenOrFail(const std::string& path, int flags, const std::string& device) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) fail(errno, "open", device, path);
  return Fd(fd);
}

static std::string ErrnoName(int err) {
  // glibc >= 2.32: the symbolic name of an errno value ("EBUSY"); no message text is parsed.
  const char* n = strerrorname_np(err);
  if (n) return n;
  return "E" + std::to_string(err);
}

Napi::Error MakeSysError(Napi::Env env, const SysError& e) {
  std::string msg = e.syscall;
  if (!e.device.empty()) msg += " " + e.device;
  if (!e.path.empty()) msg += " " + e.path;
  msg += ": ";
  msg += ErrnoName(e.err);
  msg += " (";
  msg += strerror(e.err);  // for people; `code` is the machine-readable part
  msg += ")";
  Napi::Error err = Napi::Error::New(env, msg);
  Napi::Object o = err.Value();
  o.Set("code", ErrnoName(e.err));
  o.Set("errno", Napi::Number::New(env, e.err));
  o.Set("syscall", e.syscall);
  if (!e.device.empty()) o.Set("device", e.device);
  if (!e.path.empty()) o.Set("path", e.path);
  return err;
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i || !info[i].IsString()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a string");
  std::string s = info[i].As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) throw Napi::TypeError::New(info.Env(), std::string(what) + " must not contain NUL");
  return s;
}

Napi::Object ArgObjectOpt(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return Napi::Object::New(info.Env());
  if (!info[i].IsObject()) throw Napi::TypeError::New(info.Env(), "options must be an object");
  return info[i].As<Napi::Object>();
}

bool OptBool(const Napi::Object& o, const char* key, bool dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  if (!v.IsBoolean()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string OptString(const Napi::Object& o, const char* key, const std::string& dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return dflt;
  if (!v.IsString()) throw Napi::TypeError::New(o.Env(), std::string(key) + " must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) throw Napi::TypeError::New(o.Env(), std::string(key) + " must not contain NUL");
  return s;
}

uint64_t ToU64(const Napi::Env& env, const Napi::Value& v, const char* what) {
  if (v.IsBigInt()) {
    bool lossless = false;
    uint64_t r = v.As<Napi::BigInt>().Uint64Value(&lossless);
    if (!lossless) throw Napi::TypeError::New(env, std::string(what) + " is out of the unsigned 64-bit range");
    return r;
  }
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (!(d >= 0) || d > 9007199254740991.0 || d != static_cast<double>(static_cast<uint64_t>(d)))
      throw Napi::TypeError::New(env, std::string(what) + " must be a non-negative safe integer");
    return static_cast<uint64_t>(d);
  }
  throw Napi::TypeError::New(env, std::string(what) + " must be a number or bigint");
}

uint64_t ArgU64(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (info.Length() <= i) throw Napi::TypeError::New(info.Env(), std::string(what) + " is required");
  return ToU64(info.Env(), info[i], what);
}

Napi::Value U64Value(Napi::Env env, uint64_t v) {
  if (v <= 9007199254740991ULL) return Napi::Number::New(env, static_cast<double>(v));
  return Napi::BigInt::New(env, v);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InitDm(env, exports);
  InitSys(env, exports);
  InitPlan(env, exports);
  return exports;
}

}  // namespace tj

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return tj::Init(env, exports); }

NODE_API_MODULE(thinjournal_native, InitModule)
