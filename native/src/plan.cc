// The plan executor: one call runs a whole list of kernel steps on a worker thread, in order, and stops at the
// first failure. A plan is decided in TypeScript (packages/reconciler: planRecovery, then lowered by
// packages/dm to tables and names); this file has no policy: it evaluates each step's declarative guard,
// runs the step or reports it skipped, and streams one progress event per step.
//
//   execPlan(steps, onProgress?, {nodeDir}?) → Promise<{ outcomes: ('done'|'skipped')[],
//                                                         failed: null | { index, error } }>
//
// Guards (each step kind has exactly one; the same semantics as BackendBase.executePlan in TypeScript):
//   createDevice  device-absent   DM_DEV_STATUS: ENXIO → create (+ load + resume, removed again on failure);
//                                 present without a live table (a create cut short by a kill between
//                                 DM_DEV_CREATE and the resume) → completed: load + resume;
//                                 present with a live table → skipped, and its node is (re)made: a device
//                                 we adopt must be reachable at <nodeDir>/<name> (no udev; KernelBackend.rawInfo).
//   resumeDevice  suspended       DM_DEV_STATUS: DM_SUSPEND_FLAG set → resume; running or absent → skipped.
//   removeDevice  device-present  DM_DEV_STATUS: ENXIO → skipped; else DM_DEV_REMOVE (ENXIO from the remove
//                                 itself, i.e. gone in between, is also "skipped").
//   deleteThin    thin-present    `delete <id>`; ENODATA → skipped. The kernel exposes thin ids only through
//                                 metadata (a snapshot and thin_dump), but its own lookup is exact and atomic
//                                 with the effect: dm-thin's delete of a missing id fails with ENODATA
//                                 (dm-thin-metadata.c __delete_device: the btree lookup's -ENODATA).
//   setTransactionId txid-is-from the pool's status line (first field: the transaction id,
//                                 Documentation/admin-guide/device-mapper/thin-provisioning.rst "Status"):
//                                 already `to` → skipped; else `set_transaction_id from to`, which the kernel
//                                 itself refuses (EINVAL) unless the current id is `from`.
//   mount         not-mounted     /proc/self/mountinfo has the mount point → skipped; else mount(2).
// Errors are SysErrors (errno values); the failed step's error is returned, never a message to parse.
#include <string.h>
#include <sys/mount.h>

#include <cstdio>
#include <memory>
#include <optional>

#include "common.h"
#include "dm.h"

namespace tj {
namespace {

enum class Kind { CreateDevice, ResumeDevice, RemoveDevice, DeleteThin, SetTransactionId, Mount };
enum class Outcome { Done = 0, Skipped = 1, Failed = 2 };

struct Step {
  Kind kind;
  std::string kindName;
  std::string name;              // createDevice, resumeDevice, removeDevice; the pool for deleteThin/setTransactionId
  std::vector<TargetLine> table; // createDevice
  uint64_t id = 0;               // deleteThin
  uint64_t from = 0, to = 0;     // setTransactionId
  std::string device, path, fsType, data;  // mount
  unsigned long mountFlags = 0;
};

struct Progress {
  size_t index;
  Outcome outcome;
  int err;  // errno of a failed step, else 0
};

const char* GuardOf(Kind k) {
  switch (k) {
    case Kind::CreateDevice: return "device-absent";
    case Kind::ResumeDevice: return "suspended";
    case Kind::RemoveDevice: return "device-present";
    case Kind::DeleteThin: return "thin-present";
    case Kind::SetTransactionId: return "txid-is-from";
    case Kind::Mount: return "not-mounted";
  }
  return "";
}

std::string StepString(const Napi::Object& o, const char* key, size_t index) {
  Napi::Value v = o.Get(key);
  if (!v.IsString()) throw Napi::TypeError::New(o.Env(), "step " + std::to_string(index) + ": " + key + " must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) throw Napi::TypeError::New(o.Env(), "step " + std::to_string(index) + ": " + key + " must not contain NUL");
  return s;
}

// Copies the JS steps into plain C++ (on the JS thread; misuse is a synchronous TypeError, before any effect).
std::vector<Step> ArgSteps(const Napi::Env& env, const Napi::Value& v) {
  if (!v.IsArray()) throw Napi::TypeError::New(env, "steps must be an array");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<Step> out;
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value e = a.Get(k);
    if (!e.IsObject()) throw Napi::TypeError::New(env, "step " + std::to_string(k) + " must be an object");
    Napi::Object o = e.As<Napi::Object>();
    Step st;
    st.kindName = StepString(o, "kind", k);
    if (st.kindName == "createDevice") st.kind = Kind::CreateDevice;
    else if (st.kindName == "resumeDevice") st.kind = Kind::ResumeDevice;
    else if (st.kindName == "removeDevice") st.kind = Kind::RemoveDevice;
    else if (st.kindName == "deleteThin") st.kind = Kind::DeleteThin;
    else if (st.kindName == "setTransactionId") st.kind = Kind::SetTransactionId;
    else if (st.kindName == "mount") st.kind = Kind::Mount;
    else throw Napi::TypeError::New(env, "step " + std::to_string(k) + ": unknown kind " + st.kindName);
    std::string guard = StepString(o, "guard", k);
    if (guard != GuardOf(st.kind))
      throw Napi::TypeError::New(env, "step " + std::to_string(k) + ": " + st.kindName + " takes guard " + GuardOf(st.kind) + ", not " + guard);
    switch (st.kind) {
      case Kind::CreateDevice:
        st.name = StepString(o, "name", k);
        st.table = ArgTable(env, o.Get("table"));
        if (st.table.empty()) throw Napi::TypeError::New(env, "step " + std::to_string(k) + ": createDevice needs a table");
        break;
      case Kind::ResumeDevice:
      case Kind::RemoveDevice:
        st.name = StepString(o, "name", k);
        break;
      case Kind::DeleteThin:
        st.name = StepString(o, "pool", k);
        st.id = ToU64(env, o.Get("deviceId"), "deviceId");
        break;
      case Kind::SetTransactionId:
        st.name = StepString(o, "pool", k);
        st.from = ToU64(env, o.Get("from"), "from");
        st.to = ToU64(env, o.Get("to"), "to");
        break;
      case Kind::Mount: {
        st.device = StepString(o, "device", k);
        st.path = StepString(o, "path", k);
        st.fsType = StepString(o, "fsType", k);
        Napi::Value d = o.Get("data");
        if (!d.IsUndefined() && !d.IsNull()) st.data = StepString(o, "data", k);
        Napi::Value f = o.Get("flags");
        if (!f.IsUndefined() && !f.IsNull()) st.mountFlags = static_cast<unsigned long>(ToU64(env, f, "flags"));
        break;
      }
    }
    out.push_back(std::move(st));
  }
  return out;
}

// DM_DEV_STATUS; nullopt when there is no such device (ENXIO).
std::optional<Info> StatusOf(const std::string& name) {
  try {
    DmReply r = DoIoctl(Call(DM_DEV_STATUS, "DM_DEV_STATUS", name));
    return InfoOf(r);
  } catch (const SysError& e) {
    if (e.err == ENXIO) return std::nullopt;
    throw;
  }
}

// mountinfo escapes space, tab, newline and backslash as \ooo (proc(5)).
std::string Unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] >= '0' && s[i + 1] <= '7' && s[i + 2] >= '0' && s[i + 2] <= '7' && s[i + 3] >= '0' && s[i + 3] <= '7') {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

// True when `path` is a mount point in this process's mount namespace (field 5 of /proc/self/mountinfo).
bool MountedAt(const std::string& path) {
  const char* mi = "/proc/self/mountinfo";
  std::unique_ptr<FILE, int (*)(FILE*)> f(::fopen(mi, "re"), ::fclose);
  if (!f) fail(errno, "open", {}, mi);
  char* line = nullptr;
  size_t cap = 0;
  bool found = false;
  while (::getline(&line, &cap, f.get()) >= 0) {
    // mount-id parent-id major:minor root mount-point ...
    const char* p = line;
    for (int field = 0; field < 4 && p; field++) {
      p = strchr(p, ' ');
      if (p) p++;
    }
    if (!p) continue;
    const char* end = strchr(p, ' ');
    if (!end) continue;
    if (Unescape(std::string(p, end - p)) == path) {
      found = true;
      break;
    }
  }
  free(line);
  return found;
}

// The pool's transaction id: the first field of its thin-pool status line; nullopt when the line does not
// start with one (a failed pool reports "Fail"): then the message is sent and the kernel answers.
std::optional<uint64_t> PoolTransactionId(const std::string& pool) {
  DmCall c = Call(DM_TABLE_STATUS, "DM_TABLE_STATUS", pool, DM_NOFLUSH_FLAG);
  c.queryOnly = true;
  DmReply r = DoIoctl(c);
  std::vector<TargetLine> ts = ParseTargets(r);
  if (ts.size() != 1 || ts[0].type != "thin-pool") return std::nullopt;
  const std::string& p = ts[0].params;
  size_t n = 0;
  uint64_t v = 0;
  while (n < p.size() && p[n] >= '0' && p[n] <= '9') {
    v = v * 10 + static_cast<uint64_t>(p[n] - '0');
    n++;
  }
  if (n == 0 || n > 19 || (n < p.size() && p[n] != ' ')) return std::nullopt;
  return v;
}

Outcome Run(const Step& st, const std::string& nodeDir) {
  switch (st.kind) {
    case Kind::CreateDevice: {
      std::optional<Info> i = StatusOf(st.name);
      if (!i) {
        CreateDevice(st.name, {}, false, &st.table, nodeDir, nullptr);
        return Outcome::Done;
      }
      if (!(i->flags & DM_ACTIVE_PRESENT_FLAG)) {
        // Present without a live table: a create cut short between DM_DEV_CREATE and its resume (a process
        // killed in between; found by the kill test). Completing it is this step's effect: load + resume.
        DmCall l = Call(DM_TABLE_LOAD, "DM_TABLE_LOAD", st.name);
        l.payload = EncodeTable(st.table, st.name);
        l.targetCount = static_cast<uint32_t>(st.table.size());
        DoIoctl(l);
        DmReply r = DoIoctl(Call(DM_DEV_SUSPEND, "DM_DEV_SUSPEND(resume)", st.name));
        Info after = InfoOf(r);
        if (!nodeDir.empty()) EnsureNode(nodeDir, st.name, after.major, after.minor);
        return Outcome::Done;
      }
      if (!nodeDir.empty()) EnsureNode(nodeDir, st.name, i->major, i->minor);
      return Outcome::Skipped;
    }
    case Kind::ResumeDevice: {
      std::optional<Info> i = StatusOf(st.name);
      if (!i || !(i->flags & DM_SUSPEND_FLAG)) return Outcome::Skipped;
      DmReply r = DoIoctl(Call(DM_DEV_SUSPEND, "DM_DEV_SUSPEND(resume)", st.name));
      Info after = InfoOf(r);
      if (!nodeDir.empty()) EnsureNode(nodeDir, st.name, after.major, after.minor);
      return Outcome::Done;
    }
    case Kind::RemoveDevice: {
      if (!StatusOf(st.name)) return Outcome::Skipped;
      try {
        DoIoctl(Call(DM_DEV_REMOVE, "DM_DEV_REMOVE", st.name));
      } catch (const SysError& e) {
        if (e.err != ENXIO) throw;
        return Outcome::Skipped;
      }
      if (!nodeDir.empty()) RemoveNode(nodeDir, st.name);
      return Outcome::Done;
    }
    case Kind::DeleteThin:
      try {
        TargetMessage(st.name, 0, "delete " + std::to_string(st.id), nullptr);
      } catch (const SysError& e) {
        if (e.err != ENODATA) throw;
        return Outcome::Skipped;
      }
      return Outcome::Done;
    case Kind::SetTransactionId: {
      std::optional<uint64_t> cur = PoolTransactionId(st.name);
      if (cur && *cur == st.to) return Outcome::Skipped;
      TargetMessage(st.name, 0, "set_transaction_id " + std::to_string(st.from) + " " + std::to_string(st.to), nullptr);
      return Outcome::Done;
    }
    case Kind::Mount: {
      if (MountedAt(st.path)) return Outcome::Skipped;
      if (::mount(st.device.c_str(), st.path.c_str(), st.fsType.c_str(), st.mountFlags, st.data.empty() ? nullptr : st.data.c_str()) < 0)
        fail(errno, "mount", {}, st.path);
      return Outcome::Done;
    }
  }
  fail(EINVAL, "execPlan");
}

class PlanWorker : public Napi::AsyncProgressQueueWorker<Progress> {
 public:
  PlanWorker(Napi::Env env, std::vector<Step> steps, std::string nodeDir, Napi::Function onProgress)
      : Napi::AsyncProgressQueueWorker<Progress>(env, "execPlan"),
        deferred_(Napi::Promise::Deferred::New(env)),
        steps_(std::move(steps)),
        nodeDir_(std::move(nodeDir)) {
    if (!onProgress.IsEmpty()) progress_ = Napi::Persistent(onProgress);
  }
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  // Worker thread: no JS values here.
  void Execute(const ExecutionProgress& progress) override {
    for (size_t k = 0; k < steps_.size(); k++) {
      try {
        Outcome o = Run(steps_[k], nodeDir_);
        outcomes_.push_back(o);
        Progress p{k, o, 0};
        progress.Send(&p, 1);
      } catch (const SysError& e) {
        failedIndex_ = static_cast<long>(k);
        error_ = e;
      } catch (const std::exception& e) {
        failedIndex_ = static_cast<long>(k);
        error_ = SysError{EIO, std::string("internal: ") + e.what(), {}, {}};
      }
      if (failedIndex_ >= 0) {
        Progress p{k, Outcome::Failed, error_.err};
        progress.Send(&p, 1);
        return;  // stop at the first failure: later steps may depend on this one
      }
    }
  }

  // JS thread, in order, before OnOK.
  void OnProgress(const Progress* data, size_t count) override {
    if (progress_.IsEmpty()) return;
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    for (size_t n = 0; n < count; n++) {
      const Progress& p = data[n];
      Napi::Object ev = Napi::Object::New(env);
      ev.Set("index", Napi::Number::New(env, static_cast<double>(p.index)));
      ev.Set("kind", steps_[p.index].kindName);
      ev.Set("outcome", p.outcome == Outcome::Done ? "done" : p.outcome == Outcome::Skipped ? "skipped" : "failed");
      if (p.err) ev.Set("errno", Napi::Number::New(env, p.err));
      // The TypeScript wrapper never throws from here (it defers a listener's exception to the result).
      progress_.Value().Call({ev});
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    Napi::Object res = Napi::Object::New(env);
    Napi::Array outs = Napi::Array::New(env, outcomes_.size());
    for (size_t k = 0; k < outcomes_.size(); k++) outs.Set(k, outcomes_[k] == Outcome::Done ? "done" : "skipped");
    res.Set("outcomes", outs);
    if (failedIndex_ >= 0) {
      Napi::Object f = Napi::Object::New(env);
      f.Set("index", Napi::Number::New(env, static_cast<double>(failedIndex_)));
      f.Set("error", MakeSysError(env, error_).Value());
      res.Set("failed", f);
    } else {
      res.Set("failed", env.Null());
    }
    deferred_.Resolve(res);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::vector<Step> steps_;
  std::string nodeDir_;
  Napi::FunctionReference progress_;
  std::vector<Outcome> outcomes_;
  long failedIndex_ = -1;
  SysError error_{};
};

// execPlan(steps, onProgress?, {nodeDir}?)
Napi::Value ExecPlan(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<Step> steps = ArgSteps(env, info.Length() > 0 ? info[0] : env.Undefined());
  Napi::Function cb;
  if (info.Length() > 1 && !info[1].IsUndefined() && !info[1].IsNull()) {
    if (!info[1].IsFunction()) throw Napi::TypeError::New(env, "onProgress must be a function");
    cb = info[1].As<Napi::Function>();
  }
  Napi::Object opt = ArgObjectOpt(info, 2);
  std::string nodeDir = OptString(opt, "nodeDir");
  auto* w = new PlanWorker(env, std::move(steps), nodeDir, cb);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

}  // namespace

void InitPlan(Napi::Env env, Napi::Object e) {
  e.Set("execPlan", Napi::Function::New(env, ExecPlan, "execPlan"));
}

}  // namespace tj
