// device-mapper ioctls on /dev/mapper/control (linux/dm-ioctl.h, interface 4.x).
//
// Every dm call goes through DoIoctl: one buffer layout (struct dm_ioctl followed by the payload), one place
// that fills the header, checks DM_BUFFER_FULL_FLAG and turns a failure into a SysError naming the command
// and the device. Nothing here retries a command for policy reasons; the only repeat is the documented
// buffer-size protocol of read-only queries (the kernel sets DM_BUFFER_FULL_FLAG and we pass a larger
// buffer), never of a command with effects.
//
// dmProbe reports what opening a control node and one DM_VERSION on it give, as facts (the version, or the
// errno error of the failing call). What those facts mean — whether device-mapper is usable, and the
// sentence that says why not — is decided in TypeScript (packages/dm/src/probe.ts), not here.
#include <fcntl.h>
#include <linux/dm-ioctl.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <fstream>
#include <mutex>
#include <vector>

#include "common.h"
#include "dm.h"

namespace tj {
namespace {

const char* kControl = "/dev/mapper/control";

// The control node is opened once per process and kept: ioctls on one fd are safe from several threads.
int ControlFd() {
  static std::mutex mu;
  static int fd = -1;
  std::lock_guard<std::mutex> lock(mu);
  if (fd >= 0) return fd;
  int f = ::open(kControl, O_RDWR | O_CLOEXEC);
  if (f < 0) fail(errno, "open", {}, kControl);
  fd = f;
  return fd;
}

}  // namespace

void CheckName(const DmCall& c) {
  // DM_NAME_LEN / DM_UUID_LEN include the terminating NUL. Refused here because they cannot be encoded.
  if (c.name.size() >= DM_NAME_LEN) fail(ENAMETOOLONG, c.cmdName, c.name.substr(0, 64) + "...");
  if (c.uuid.size() >= DM_UUID_LEN) fail(ENAMETOOLONG, c.cmdName, c.name);
}

DmReply DoIoctlOn(int fd, const DmCall& c) {
  CheckName(c);
  size_t room = c.outRoom;
  for (;;) {
    size_t total = sizeof(dm_ioctl) + c.payload.size() + room;
    total = (total + 7) & ~size_t(7);
    DmReply r;
    r.mem.assign(total / 8, 0);
    dm_ioctl* io = r.io();
    // Interface version we were written against; the kernel accepts any 4.x minor <= its own.
    io->version[0] = 4;
    io->version[1] = 0;
    io->version[2] = 0;
    io->data_size = static_cast<uint32_t>(total);
    io->data_start = sizeof(dm_ioctl);
    io->flags = c.flags;
    io->event_nr = c.eventNr;
    io->target_count = c.targetCount;
    memcpy(io->name, c.name.data(), c.name.size());
    memcpy(io->uuid, c.uuid.data(), c.uuid.size());
    if (!c.payload.empty()) memcpy(reinterpret_cast<char*>(r.mem.data()) + sizeof(dm_ioctl), c.payload.data(), c.payload.size());
    if (::ioctl(fd, c.cmd, io) < 0) fail(errno, c.cmdName, c.name);
    if ((r.io()->flags & DM_BUFFER_FULL_FLAG) && c.queryOnly) {
      if (room >= (64u << 20)) fail(ENOBUFS, c.cmdName, c.name);
      room *= 4;
      continue;
    }
    return r;
  }
}

DmReply DoIoctl(const DmCall& c) { return DoIoctlOn(ControlFd(), c); }

Info InfoOf(DmReply& r) {
  dm_ioctl* io = r.io();
  Info i;
  i.name.assign(io->name, strnlen(io->name, DM_NAME_LEN));
  i.uuid.assign(io->uuid, strnlen(io->uuid, DM_UUID_LEN));
  i.major = major(io->dev);
  i.minor = minor(io->dev);
  i.flags = io->flags;
  i.eventNr = io->event_nr;
  i.targetCount = io->target_count;
  i.openCount = io->open_count;
  return i;
}

Napi::Object InfoJs(Napi::Env env, const Info& i) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", i.name);
  o.Set("uuid", i.uuid);
  o.Set("major", i.major);
  o.Set("minor", i.minor);
  o.Set("openCount", i.openCount);
  o.Set("eventNr", i.eventNr);
  o.Set("targetCount", i.targetCount);
  o.Set("suspended", bool(i.flags & DM_SUSPEND_FLAG));
  o.Set("readOnly", bool(i.flags & DM_READONLY_FLAG));
  o.Set("activeTable", bool(i.flags & DM_ACTIVE_PRESENT_FLAG));
  o.Set("inactiveTable", bool(i.flags & DM_INACTIVE_PRESENT_FLAG));
  o.Set("deferredRemove", bool(i.flags & DM_DEFERRED_REMOVE));
  o.Set("internalSuspend", bool(i.flags & DM_INTERNAL_SUSPEND_FLAG));
  return o;
}

std::vector<TargetLine> ParseTargets(DmReply& r) {
  // In DM_TABLE_STATUS replies, `next` counts from the first dm_target_spec (see dm-ioctl.h).
  std::vector<TargetLine> out;
  const char* first = r.data();
  size_t len = r.dataLen();
  size_t off = 0;
  for (uint32_t n = 0; n < r.io()->target_count; n++) {
    if (off + sizeof(dm_target_spec) > len) break;
    const dm_target_spec* s = reinterpret_cast<const dm_target_spec*>(first + off);
    TargetLine t;
    t.start = s->sector_start;
    t.length = s->length;
    t.type.assign(s->target_type, strnlen(s->target_type, DM_MAX_TYPE_NAME));
    const char* p = reinterpret_cast<const char*>(s + 1);
    size_t maxp = len - off - sizeof(dm_target_spec);
    t.params.assign(p, strnlen(p, maxp));
    out.push_back(std::move(t));
    if (s->next == 0 || s->next <= off) break;
    off = s->next;
  }
  return out;
}

Napi::Array TargetsJs(Napi::Env env, const std::vector<TargetLine>& ts) {
  Napi::Array a = Napi::Array::New(env, ts.size());
  for (size_t k = 0; k < ts.size(); k++) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("start", U64Value(env, ts[k].start));
    o.Set("length", U64Value(env, ts[k].length));
    o.Set("type", ts[k].type);
    o.Set("params", ts[k].params);
    a.Set(k, o);
  }
  return a;
}

std::vector<TargetLine> ArgTable(const Napi::Env& env, const Napi::Value& v) {
  if (!v.IsArray()) throw Napi::TypeError::New(env, "table must be an array of {start,length,type,params}");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<TargetLine> out;
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value e = a.Get(k);
    if (!e.IsObject()) throw Napi::TypeError::New(env, "table entries must be objects");
    Napi::Object o = e.As<Napi::Object>();
    TargetLine t;
    t.start = ToU64(env, o.Get("start"), "start");
    t.length = ToU64(env, o.Get("length"), "length");
    if (!o.Get("type").IsString() || !o.Get("params").IsString()) throw Napi::TypeError::New(env, "type and params must be strings");
    t.type = o.Get("type").As<Napi::String>().Utf8Value();
    t.params = o.Get("params").As<Napi::String>().Utf8Value();
    if (t.params.find('\0') != std::string::npos || t.type.find('\0') != std::string::npos)
      throw Napi::TypeError::New(env, "type and params must not contain NUL");
    out.push_back(std::move(t));
  }
  return out;
}

// Encodes a table for DM_TABLE_LOAD: each spec's `next` is the distance to the next spec, 8-byte aligned.
std::vector<char> EncodeTable(const std::vector<TargetLine>& ts, const std::string& name) {
  std::vector<char> buf;
  for (const TargetLine& t : ts) {
    if (t.type.size() >= DM_MAX_TYPE_NAME) fail(EINVAL, "DM_TABLE_LOAD", name);
    size_t recLen = sizeof(dm_target_spec) + t.params.size() + 1;
    recLen = (recLen + 7) & ~size_t(7);
    size_t at = buf.size();
    buf.resize(at + recLen, 0);
    dm_target_spec* s = reinterpret_cast<dm_target_spec*>(buf.data() + at);
    s->sector_start = t.start;
    s->length = t.length;
    s->status = 0;
    s->next = static_cast<uint32_t>(recLen);
    memcpy(s->target_type, t.type.data(), t.type.size());
    memcpy(buf.data() + at + sizeof(dm_target_spec), t.params.data(), t.params.size());
  }
  return buf;
}

DmCall Call(unsigned long cmd, const char* cmdName, const std::string& name, uint32_t flags) {
  DmCall c;
  c.cmd = cmd;
  c.cmdName = cmdName;
  c.name = name;
  c.flags = flags;
  return c;
}

// /dev/mapper/<name> for a device: created when missing (no udev is assumed, as libdevmapper's fallback),
// replaced when it exists with another device number. Returns the path.
std::string EnsureNode(const std::string& dir, const std::string& name, uint32_t maj, uint32_t min) {
  std::string path = dir + "/" + name;
  struct stat st;
  dev_t want = makedev(maj, min);
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISBLK(st.st_mode) && st.st_rdev == want) return path;
    if (::unlink(path.c_str()) < 0) fail(errno, "unlink", name, path);
  }
  if (::mknod(path.c_str(), S_IFBLK | 0600, want) < 0 && errno != EEXIST) fail(errno, "mknod", name, path);
  return path;
}

// Removes /dev/mapper/<name> only when it is a block node (never another kind of file).
void RemoveNode(const std::string& dir, const std::string& name) {
  std::string path = dir + "/" + name;
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0 && S_ISBLK(st.st_mode)) ::unlink(path.c_str());
}

Builder InfoBuilder(const Info& i, const std::string& node = {}) {
  return [i, node](Napi::Env env) -> Napi::Value {
    Napi::Object o = InfoJs(env, i);
    if (!node.empty()) o.Set("node", node);
    return o;
  };
}

Info CreateDevice(const std::string& name, const std::string& uuid, bool readOnly, const std::vector<TargetLine>* table,
                  const std::string& nodeDir, std::string* node) {
  DmCall c = Call(DM_DEV_CREATE, "DM_DEV_CREATE", name);
  c.uuid = uuid;
  DmReply r = DoIoctl(c);
  Info i = InfoOf(r);
  if (!table) return i;
  try {
    DmCall l = Call(DM_TABLE_LOAD, "DM_TABLE_LOAD", name, readOnly ? DM_READONLY_FLAG : 0);
    l.payload = EncodeTable(*table, name);
    l.targetCount = static_cast<uint32_t>(table->size());
    DoIoctl(l);
    DmReply rr = DoIoctl(Call(DM_DEV_SUSPEND, "DM_DEV_SUSPEND(resume)", name));
    i = InfoOf(rr);
    if (!nodeDir.empty()) {
      std::string n = EnsureNode(nodeDir, name, i.major, i.minor);
      if (node) *node = n;
    }
    return i;
  } catch (const SysError&) {
    try {
      DoIoctl(Call(DM_DEV_REMOVE, "DM_DEV_REMOVE", name));
    } catch (const SysError&) {
      // The original error is the one worth reporting; a remove that fails here leaves a device
      // without a table, which `dmListDevices` shows.
    }
    throw;
  }
}

bool TargetMessage(const std::string& name, uint64_t sector, const std::string& msg, std::string* out) {
  DmCall c = Call(DM_TARGET_MSG, "DM_TARGET_MSG", name);
  c.payload.assign(sizeof(dm_target_msg) + msg.size() + 1, 0);
  dm_target_msg* m = reinterpret_cast<dm_target_msg*>(c.payload.data());
  m->sector = sector;
  memcpy(c.payload.data() + sizeof(dm_target_msg), msg.data(), msg.size());
  c.outRoom = 64 * 1024;
  DmReply r = DoIoctl(c);
  if (r.io()->flags & DM_BUFFER_FULL_FLAG) fail(ENOBUFS, "DM_TARGET_MSG", name);
  bool has = r.io()->flags & DM_DATA_OUT_FLAG;
  if (has && out) out->assign(r.data(), strnlen(r.data(), r.dataLen()));
  return has;
}

// ---------------------------------------------------------------- exported calls
namespace {

Napi::Value Version(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), "dmVersion", []() -> Builder {
    DmReply r = DoIoctl(Call(DM_VERSION, "DM_VERSION", {}));
    uint32_t v[3] = {r.io()->version[0], r.io()->version[1], r.io()->version[2]};
    return [v](Napi::Env env) -> Napi::Value {
      Napi::Object o = Napi::Object::New(env);
      o.Set("major", v[0]);
      o.Set("minor", v[1]);
      o.Set("patch", v[2]);
      return o;
    };
  });
}

// dmProbe(path = "/dev/mapper/control") → { ok: true, version: {major, minor, patch} }
//                                       | { ok: false, error }   (error: the errno Error of `open` or DM_VERSION)
// Synchronous, the one exception to "every call returns a Promise" (common.h): a backend is chosen before
// any asynchronous work starts (a CLI command's backendFor, a test runner deciding where to run), and the
// probe is one open and one DM_VERSION, which the kernel answers at once. The node is opened O_NONBLOCK so
// that a path naming a FIFO or a terminal cannot hold the JS thread in open(); dm's control node ignores
// the flag. The descriptor is the probe's own and closed before returning: it is not the process's cached
// control descriptor (ControlFd), so probing another path, or a path that fails, changes nothing for later
// calls. Failures are results, not exceptions: a missing or dead device-mapper is an answer to the question.
Napi::Value Probe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = kControl;
  if (info.Length() > 0 && !info[0].IsUndefined()) path = ArgString(info, 0, "path");
  uint32_t v[3] = {0, 0, 0};
  bool ok = false;
  SysError err{};
  try {
    Fd fd = OpenOrFail(path, O_RDWR | O_NONBLOCK);
    DmReply r = DoIoctlOn(fd.get(), Call(DM_VERSION, "DM_VERSION", {}));
    v[0] = r.io()->version[0];
    v[1] = r.io()->version[1];
    v[2] = r.io()->version[2];
    ok = true;
  } catch (const SysError& e) {
    err = e;
    if (err.path.empty()) err.path = path;
  }
  Napi::Object o = Napi::Object::New(env);
  o.Set("ok", ok);
  if (ok) {
    Napi::Object ver = Napi::Object::New(env);
    ver.Set("major", v[0]);
    ver.Set("minor", v[1]);
    ver.Set("patch", v[2]);
    o.Set("version", ver);
  } else {
    o.Set("error", MakeSysError(env, err).Value());
  }
  return o;
}

Napi::Value ListDevices(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), "dmListDevices", []() -> Builder {
    DmCall c = Call(DM_LIST_DEVICES, "DM_LIST_DEVICES", {});
    c.queryOnly = true;
    DmReply r = DoIoctl(c);
    struct Dev { std::string name; uint32_t major, minor; int64_t eventNr; };
    std::vector<Dev> devs;
    // Since interface 4.46 each record carries event_nr and flags after the name, 8-byte aligned.
    bool hasEvent = r.io()->version[0] == 4 && r.io()->version[1] >= 46;
    const char* d = r.data();
    size_t len = r.dataLen(), off = 0;
    if (len >= sizeof(dm_name_list) && reinterpret_cast<const dm_name_list*>(d)->dev != 0) {
      for (;;) {
        const dm_name_list* nl = reinterpret_cast<const dm_name_list*>(d + off);
        Dev dv;
        size_t maxn = len - off - offsetof(dm_name_list, name);
        size_t nlen = strnlen(nl->name, maxn);
        dv.name.assign(nl->name, nlen);
        dv.major = major(nl->dev);
        dv.minor = minor(nl->dev);
        dv.eventNr = -1;
        if (hasEvent) {
          size_t after = (off + offsetof(dm_name_list, name) + nlen + 1 + 7) & ~size_t(7);
          if (after + 8 <= len) {
            uint32_t ev;
            memcpy(&ev, d + after, 4);
            dv.eventNr = ev;
          }
        }
        devs.push_back(std::move(dv));
        if (nl->next == 0) break;
        off += nl->next;
        if (off + sizeof(dm_name_list) > len) break;
      }
    }
    return [devs](Napi::Env env) -> Napi::Value {
      Napi::Array a = Napi::Array::New(env, devs.size());
      for (size_t k = 0; k < devs.size(); k++) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("name", devs[k].name);
        o.Set("major", devs[k].major);
        o.Set("minor", devs[k].minor);
        if (devs[k].eventNr >= 0) o.Set("eventNr", Napi::Number::New(env, double(devs[k].eventNr)));
        a.Set(k, o);
      }
      return a;
    };
  });
}

Napi::Value ListTargets(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), "dmListTargets", []() -> Builder {
    DmCall c = Call(DM_LIST_VERSIONS, "DM_LIST_VERSIONS", {});
    c.queryOnly = true;
    DmReply r = DoIoctl(c);
    struct T { std::string name; uint32_t v[3]; };
    std::vector<T> ts;
    const char* d = r.data();
    size_t len = r.dataLen(), off = 0;
    while (off + sizeof(dm_target_versions) <= len) {
      const dm_target_versions* tv = reinterpret_cast<const dm_target_versions*>(d + off);
      T t;
      t.name.assign(tv->name, strnlen(tv->name, len - off - sizeof(dm_target_versions)));
      t.v[0] = tv->version[0];
      t.v[1] = tv->version[1];
      t.v[2] = tv->version[2];
      ts.push_back(std::move(t));
      if (tv->next == 0) break;
      off += tv->next;
    }
    return [ts](Napi::Env env) -> Napi::Value {
      Napi::Array a = Napi::Array::New(env, ts.size());
      for (size_t k = 0; k < ts.size(); k++) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("name", ts[k].name);
        Napi::Array v = Napi::Array::New(env, 3);
        for (uint32_t j = 0; j < 3; j++) v.Set(j, ts[k].v[j]);
        o.Set("version", v);
        a.Set(k, o);
      }
      return a;
    };
  });
}

// dmCreate(name, {uuid, readOnly, table, nodeDir}): DM_DEV_CREATE; with a table also DM_TABLE_LOAD and a
// resume (as `dmsetup create` does). If any later step fails, the device this call created is removed
// again (DM_DEV_REMOVE) and the first error is reported: a failed create leaves nothing behind.
Napi::Value Create(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0, "name");
  Napi::Object opt = ArgObjectOpt(info, 1);
  std::string uuid = OptString(opt, "uuid");
  bool ro = OptBool(opt, "readOnly");
  std::string nodeDir = OptString(opt, "nodeDir");
  bool hasTable = !opt.Get("table").IsUndefined();
  std::vector<TargetLine> table;
  if (hasTable) table = ArgTable(info.Env(), opt.Get("table"));
  return Queue(info.Env(), "dmCreate", [=]() -> Builder {
    std::string node;
    Info i = CreateDevice(name, uuid, ro, hasTable ? &table : nullptr, nodeDir, &node);
    return InfoBuilder(i, node);
  });
}

Napi::Value Load(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0, "name");
  if (info.Length() < 2) throw Napi::TypeError::New(info.Env(), "table is required");
  std::vector<TargetLine> table = ArgTable(info.Env(), info[1]);
  Napi::Object opt = ArgObjectOpt(info, 2);
  bool ro = OptBool(opt, "readOnly");
  return Queue(info.Env(), "dmLoad", [=]() -> Builder {
    DmCall l = Call(DM_TABLE_LOAD, "DM_TABLE_LOAD", name, ro ? DM_READONLY_FLAG : 0);
    l.payload = EncodeTable(table, name);
    l.targetCount = static_cast<uint32_t>(table.size());
    DmReply r = DoIoctl(l);
    return InfoBuilder(InfoOf(r));
  });
}

Napi::Value Clear(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0, "name");
  return Queue(info.Env(), "dmClear", [=]() -> Builder {
    DmReply r = DoIoctl(Call(DM_TABLE_CLEAR, "DM_TABLE_CLEAR", name));
    return InfoBuilder(InfoOf(r));
  });
}

Napi::Value Suspend(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0, "name");
  Napi::Object opt = ArgObjectOpt(info, 1);
  uint32_t flags = DM_SUSPEND_FLAG;
  if (OptBool(opt, "noFlush")) flags |= DM_NOFLUSH_FLAG;
  if (OptBool(opt, "skipLockfs")) flags |= DM_SKIP_LOCKFS_FLAG;
  return Queue(info.Env(), "dmSuspend", [=]() -> Builder {
    DmReply r = DoIoctl(Call(DM_DEV_SUSPEND, "DM_DEV_SUSPEND", name, flags));
    return InfoBuilder(InfoOf(r));
  });
}

Napi::Value Resume(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0, "name");
  Napi::Object opt = ArgObjectOpt(info, 1);
  std::string nodeDir = OptString(opt, "nodeDir");
  return Queue(info.Env(), "dmResume", [=]() -> Builder {
    DmReply r = DoIoctl(Call(DM_DEV_SUSPEND, "DM_DEV_SUSPEND(resume)", name));
    Info i = InfoOf(r);
    std::string node;
    if (!nodeDir.empty()) node = EnsureNode(nodeDir, name, i.major, i.minor);
    return InfoBuilder(i, node);
  });
}

// dmRemove(name, {deferred, nodeDir}) → {removed, deferred}. With `deferred`, an open device is marked for
// removal at its last close (the kernel then returns success with DM_DEFERRED_REMOVE still set).
Napi::Value Remove(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0, "name");
  Napi::Object opt = ArgObjectOpt(info, 1);
  bool deferred = OptBool(opt, "deferred");
  std::string nodeDir = OptString(opt, "nodeDir");
  return Queue(info.Env(), "dmRemove", [=]() -> Builder {
    DmReply r = DoIoctl(Call(DM_DEV_REMOVE, "DM_DEV_REMOVE", name, deferred ? DM_DEFERRED_REMOVE : 0));
    bool isDeferred = deferred && (r.io()->flags & DM_DEFERRED_REMOVE);
    if (!isDeferred && !nodeDir.empty()) RemoveNode(nodeDir, name);
    return [isDeferred](Napi::Env env) -> Napi::Value {
      Napi::Object o = Napi::Object::New(env);
      o.Set("removed", !isDeferred);
      o.Set("deferred", isDeferred);
      return o;
    };
  });
}

Napi::Value DevInfo(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0, "name");
  return Queue(info.Env(), "dmInfo", [=]() -> Builder {
    DmReply r = DoIoctl(Call(DM_DEV_STATUS, "DM_DEV_STATUS", name));
    return InfoBuilder(InfoOf(r));
  });
}

// dmStatus / dmTable: DM_TABLE_STATUS, without / with DM_STATUS_TABLE_FLAG.
// Note (dm-ioctl.h): without DM_NOFLUSH_FLAG the thin targets commit outstanding metadata before reporting.
Napi::Value TableStatus(const Napi::CallbackInfo& info, bool table) {
  std::string name = ArgString(info, 0, "name");
  Napi::Object opt = ArgObjectOpt(info, 1);
  uint32_t flags = table ? DM_STATUS_TABLE_FLAG : 0;
  if (OptBool(opt, "noFlush")) flags |= DM_NOFLUSH_FLAG;
  if (OptBool(opt, "inactive")) flags |= DM_QUERY_INACTIVE_TABLE_FLAG;
  return Queue(info.Env(), table ? "dmTable" : "dmStatus", [=]() -> Builder {
    DmCall c = Call(DM_TABLE_STATUS, table ? "DM_TABLE_STATUS(table)" : "DM_TABLE_STATUS", name, flags);
    c.queryOnly = true;
    DmReply r = DoIoctl(c);
    Info i = InfoOf(r);
    std::vector<TargetLine> ts = ParseTargets(r);
    return [i, ts](Napi::Env env) -> Napi::Value {
      Napi::Object o = Napi::Object::New(env);
      o.Set("info", InfoJs(env, i));
      o.Set("targets", TargetsJs(env, ts));
      return o;
    };
  });
}
Napi::Value Status(const Napi::CallbackInfo& info) { return TableStatus(info, false); }
Napi::Value Table(const Napi::CallbackInfo& info) { return TableStatus(info, true); }

// dmMessage(name, sector, message) → the target's reply text, or null when it sent none.
// Never repeated: a message has effects, so a too-small reply buffer is reported (ENOBUFS), not retried.
Napi::Value Message(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0, "name");
  uint64_t sector = ArgU64(info, 1, "sector");
  std::string msg = ArgString(info, 2, "message");
  return Queue(info.Env(), "dmMessage", [=]() -> Builder {
    std::string out;
    bool has = TargetMessage(name, sector, msg, &out);
    return [has, out](Napi::Env env) -> Napi::Value {
      if (!has) return env.Null();
      return Napi::String::New(env, out);
    };
  });
}

// dmWaitEvent(name, eventNr): returns once the device's event counter differs from eventNr.
// It occupies one libuv worker thread while it waits (UV_THREADPOOL_SIZE bounds how many may wait).
Napi::Value WaitEvent(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0, "name");
  uint64_t ev = ArgU64(info, 1, "eventNr");
  return Queue(info.Env(), "dmWaitEvent", [=]() -> Builder {
    DmCall c = Call(DM_DEV_WAIT, "DM_DEV_WAIT", name);
    c.eventNr = static_cast<uint32_t>(ev);
    c.queryOnly = true;
    DmReply r = DoIoctl(c);
    return InfoBuilder(InfoOf(r));
  });
}

// sysfsDmName(minor) → the dm name of /dev/dm-<minor>, read from /sys/block/dm-N/dm/name.
Napi::Value SysfsDmName(const Napi::CallbackInfo& info) {
  uint64_t minorN = ArgU64(info, 0, "minor");
  return Queue(info.Env(), "sysfsDmName", [=]() -> Builder {
    std::string path = "/sys/block/dm-" + std::to_string(minorN) + "/dm/name";
    Fd fd = OpenOrFail(path, O_RDONLY);
    char buf[DM_NAME_LEN + 2];
    ssize_t n = ::read(fd.get(), buf, sizeof(buf) - 1);
    if (n < 0) fail(errno, "read", {}, path);
    std::string name(buf, static_cast<size_t>(n));
    while (!name.empty() && (name.back() == '\n' || name.back() == '\0')) name.pop_back();
    return [name](Napi::Env env) -> Napi::Value { return Napi::String::New(env, name); };
  });
}

// mknodBlock(path, major, minor): a block node with mode 0600 (EEXIST when the path exists).
Napi::Value MknodBlock(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  uint64_t maj = ArgU64(info, 1, "major"), min = ArgU64(info, 2, "minor");
  return Queue(info.Env(), "mknodBlock", [=]() -> Builder {
    if (::mknod(path.c_str(), S_IFBLK | 0600, makedev(maj, min)) < 0) fail(errno, "mknod", {}, path);
    return nullptr;
  });
}

// ensureDmNode(dir, name, major, minor) → path: as dmCreate's nodeDir option, for devices made elsewhere.
Napi::Value EnsureDmNode(const Napi::CallbackInfo& info) {
  std::string dir = ArgString(info, 0, "dir");
  std::string name = ArgString(info, 1, "name");
  uint64_t maj = ArgU64(info, 2, "major"), min = ArgU64(info, 3, "minor");
  return Queue(info.Env(), "ensureDmNode", [=]() -> Builder {
    std::string p = EnsureNode(dir, name, uint32_t(maj), uint32_t(min));
    return [p](Napi::Env env) -> Napi::Value { return Napi::String::New(env, p); };
  });
}

}  // namespace

void InitDm(Napi::Env env, Napi::Object e) {
  e.Set("dmVersion", Napi::Function::New(env, Version, "dmVersion"));
  e.Set("dmProbe", Napi::Function::New(env, Probe, "dmProbe"));
  e.Set("dmListDevices", Napi::Function::New(env, ListDevices, "dmListDevices"));
  e.Set("dmListTargets", Napi::Function::New(env, ListTargets, "dmListTargets"));
  e.Set("dmCreate", Napi::Function::New(env, Create, "dmCreate"));
  e.Set("dmLoad", Napi::Function::New(env, Load, "dmLoad"));
  e.Set("dmClear", Napi::Function::New(env, Clear, "dmClear"));
  e.Set("dmSuspend", Napi::Function::New(env, Suspend, "dmSuspend"));
  e.Set("dmResume", Napi::Function::New(env, Resume, "dmResume"));
  e.Set("dmRemove", Napi::Function::New(env, Remove, "dmRemove"));
  e.Set("dmInfo", Napi::Function::New(env, DevInfo, "dmInfo"));
  e.Set("dmStatus", Napi::Function::New(env, Status, "dmStatus"));
  e.Set("dmTable", Napi::Function::New(env, Table, "dmTable"));
  e.Set("dmMessage", Napi::Function::New(env, Message, "dmMessage"));
  e.Set("dmWaitEvent", Napi::Function::New(env, WaitEvent, "dmWaitEvent"));
  e.Set("sysfsDmName", Napi::Function::New(env, SysfsDmName, "sysfsDmName"));
  e.Set("mknodBlock", Napi::Function::New(env, MknodBlock, "mknodBlock"));
  e.Set("ensureDmNode", Napi::Function::New(env, EnsureDmNode, "ensureDmNode"));
  Napi::Object c = Napi::Object::New(env);
  c.Set("DM_NAME_LEN", Napi::Number::New(env, static_cast<double>(DM_NAME_LEN)));
  c.Set("DM_UUID_LEN", Napi::Number::New(env, static_cast<double>(DM_UUID_LEN)));
  c.Set("DM_MAX_TYPE_NAME", Napi::Number::New(env, static_cast<double>(DM_MAX_TYPE_NAME)));
  e.Set("dmConstants", c);
}

}  // namespace tj
