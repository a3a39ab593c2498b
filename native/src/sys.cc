// Loop devices (linux/loop.h), block-device ioctls (BLKGETSIZE64, BLKDISCARD, BLKZEROOUT, fsync) and
// mount/umount2. Translation only: no fallback to read-only when a file cannot be opened for writing, no
// retry when another process takes the loop device we were offered (the caller decides).
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common.h"

namespace tj {
namespace {

const char* kLoopControl = "/dev/loop-control";

int LoopGetFreeNr() {
  Fd ctl = OpenOrFail(kLoopControl, O_RDWR);
  int n = ::ioctl(ctl.get(), LOOP_CTL_GET_FREE);
  if (n < 0) fail(errno, "LOOP_CTL_GET_FREE", {}, kLoopControl);
  return n;
}

Builder StringBuilder(const std::string& s) {
  return [s](Napi::Env env) -> Napi::Value { return Napi::String::New(env, s); };
}

Napi::Value LoopGetFree(const Napi::CallbackInfo& info) {
  return Queue(info.Env(), "loopGetFree", []() -> Builder {
    int n = LoopGetFreeNr();
    return [n](Napi::Env env) -> Napi::Value { return Napi::Number::New(env, n); };
  });
}

// loopAttach(file, {readOnly, autoclear, directIo, partscan, blockSize, device}) → {device, number}.
// Takes the loop device the kernel offers (LOOP_CTL_GET_FREE) unless `device` names one, and binds the file
// with LOOP_CONFIGURE; kernels without it (ENOTTY/EINVAL) get LOOP_SET_FD + LOOP_SET_STATUS64, and a
// SET_STATUS64 failure unbinds again, so a failed attach leaves no bound loop device.
// Autoclear: the kernel detaches the loop device at its last close. Our own descriptor closes when this
// call returns, so with nothing else holding the device (a mount, a dm table) it detaches at once; use
// loopSetAutoclear after a holder exists when that is not wanted.
Napi::Value LoopAttach(const Napi::CallbackInfo& info) {
  std::string file = ArgString(info, 0, "file");
  Napi::Object opt = ArgObjectOpt(info, 1);
  bool ro = OptBool(opt, "readOnly"), autoclear = OptBool(opt, "autoclear");
  bool dio = OptBool(opt, "directIo"), partscan = OptBool(opt, "partscan");
  std::string device = OptString(opt, "device");
  uint64_t blockSize = 0;
  if (!opt.Get("blockSize").IsUndefined()) blockSize = ToU64(info.Env(), opt.Get("blockSize"), "blockSize");
  return Queue(info.Env(), "loopAttach", [=]() -> Builder {
    Fd f = OpenOrFail(file, ro ? O_RDONLY : O_RDWR);
    std::string dev = device;
    if (dev.empty()) dev = "/dev/loop" + std::to_string(LoopGetFreeNr());
    Fd l = OpenOrFail(dev, ro ? O_RDONLY : O_RDWR);
    loop_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.fd = static_cast<__u32>(f.get());
    cfg.block_size = static_cast<__u32>(blockSize);
    uint32_t flags = 0;
    if (ro) flags |= LO_FLAGS_READ_ONLY;
    if (autoclear) flags |= LO_FLAGS_AUTOCLEAR;
    if (dio) flags |= LO_FLAGS_DIRECT_IO;
    if (partscan) flags |= LO_FLAGS_PARTSCAN;
    cfg.info.lo_flags = flags;
    strncpy(reinterpret_cast<char*>(cfg.info.lo_file_name), file.c_str(), LO_NAME_SIZE - 1);
    if (::ioctl(l.get(), LOOP_CONFIGURE, &cfg) < 0) {
      int e = errno;
      if (e != ENOTTY && e != EINVAL) fail(e, "LOOP_CONFIGURE", {}, dev);
      // Kernels before 5.8: the two-step protocol.
      if (::ioctl(l.get(), LOOP_SET_FD, f.get()) < 0) fail(errno, "LOOP_SET_FD", {}, dev);
      loop_info64 li;
      memset(&li, 0, sizeof li);
      li.lo_flags = flags & (LO_FLAGS_AUTOCLEAR | LO_FLAGS_PARTSCAN);
      strncpy(reinterpret_cast<char*>(li.lo_file_name), file.c_str(), LO_NAME_SIZE - 1);
      if (::ioctl(l.get(), LOOP_SET_STATUS64, &li) < 0) {
        int e2 = errno;
        ::ioctl(l.get(), LOOP_CLR_FD, 0);
        fail(e2, "LOOP_SET_STATUS64", {}, dev);
      }
      if (dio && ::ioctl(l.get(), LOOP_SET_DIRECT_IO, 1UL) < 0) {
        int e3 = errno;
        ::ioctl(l.get(), LOOP_CLR_FD, 0);
        fail(e3, "LOOP_SET_DIRECT_IO", {}, dev);
      }
    }
    int nr = -1;
    struct stat st;
    if (::fstat(l.get(), &st) == 0 && S_ISBLK(st.st_mode)) nr = static_cast<int>(minor(st.st_rdev));
    return [dev, nr](Napi::Env env) -> Napi::Value {
      Napi::Object o = Napi::Object::New(env);
      o.Set("device", dev);
      o.Set("number", nr);
      return o;
    };
  });
}

Napi::Value LoopDetach(const Napi::CallbackInfo& info) {
  std::string dev = ArgString(info, 0, "device");
  return Queue(info.Env(), "loopDetach", [=]() -> Builder {
    Fd l = OpenOrFail(dev, O_RDONLY);
    if (::ioctl(l.get(), LOOP_CLR_FD, 0) < 0) fail(errno, "LOOP_CLR_FD", {}, dev);
    return nullptr;
  });
}

Napi::Value LoopSetCapacity(const Napi::CallbackInfo& info) {
  std::string dev = ArgString(info, 0, "device");
  return Queue(info.Env(), "loopSetCapacity", [=]() -> Builder {
    Fd l = OpenOrFail(dev, O_RDONLY);
    if (::ioctl(l.get(), LOOP_SET_CAPACITY, 0) < 0) fail(errno, "LOOP_SET_CAPACITY", {}, dev);
    return nullptr;
  });
}

Napi::Value LoopSetAutoclear(const Napi::CallbackInfo& info) {
  std::string dev = ArgString(info, 0, "device");
  if (info.Length() < 2 || !info[1].IsBoolean()) throw Napi::TypeError::New(info.Env(), "on must be a boolean");
  bool on = info[1].As<Napi::Boolean>().Value();
  return Queue(info.Env(), "loopSetAutoclear", [=]() -> Builder {
    Fd l = OpenOrFail(dev, O_RDONLY);
    loop_info64 li;
    memset(&li, 0, sizeof li);
    if (::ioctl(l.get(), LOOP_GET_STATUS64, &li) < 0) fail(errno, "LOOP_GET_STATUS64", {}, dev);
    if (on) li.lo_flags |= LO_FLAGS_AUTOCLEAR;
    else li.lo_flags &= ~uint32_t(LO_FLAGS_AUTOCLEAR);
    if (::ioctl(l.get(), LOOP_SET_STATUS64, &li) < 0) fail(errno, "LOOP_SET_STATUS64", {}, dev);
    return nullptr;
  });
}

// loopBackingFile(device) → the bound file's path. sysfs has the full path; LOOP_GET_STATUS64 (fallback,
// when sysfs is not mounted) only its first 63 bytes. An unbound device is ENXIO.
Napi::Value LoopBackingFile(const Napi::CallbackInfo& info) {
  std::string dev = ArgString(info, 0, "device");
  return Queue(info.Env(), "loopBackingFile", [=]() -> Builder {
    Fd l = OpenOrFail(dev, O_RDONLY);
    struct stat st;
    if (::fstat(l.get(), &st) < 0) fail(errno, "fstat", {}, dev);
    if (!S_ISBLK(st.st_mode)) fail(ENOTBLK, "fstat", {}, dev);
    loop_info64 li;
    memset(&li, 0, sizeof li);
    if (::ioctl(l.get(), LOOP_GET_STATUS64, &li) < 0) fail(errno, "LOOP_GET_STATUS64", {}, dev);
    std::string sys = "/sys/dev/block/" + std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev)) +
                      "/loop/backing_file";
    int fd = ::open(sys.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      Fd s(fd);
      std::string out;
      char buf[4096];
      ssize_t n;
      while ((n = ::read(s.get(), buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
      while (!out.empty() && out.back() == '\n') out.pop_back();
      if (!out.empty()) return StringBuilder(out);
    }
    const char* name = reinterpret_cast<const char*>(li.lo_file_name);
    return StringBuilder(std::string(name, strnlen(name, LO_NAME_SIZE)));
  });
}

Napi::Value BlkSize(const Napi::CallbackInfo& info) {
  std::string dev = ArgString(info, 0, "device");
  return Queue(info.Env(), "blkSize", [=]() -> Builder {
    Fd d = OpenOrFail(dev, O_RDONLY);
    uint64_t size = 0;
    if (::ioctl(d.get(), BLKGETSIZE64, &size) < 0) fail(errno, "BLKGETSIZE64", {}, dev);
    return [size](Napi::Env env) -> Napi::Value { return U64Value(env, size); };
  });
}

Napi::Value BlkRange(const Napi::CallbackInfo& info, unsigned long cmd, const char* cmdName) {
  std::string dev = ArgString(info, 0, "device");
  uint64_t off = ArgU64(info, 1, "offset"), len = ArgU64(info, 2, "length");
  return Queue(info.Env(), cmdName, [=]() -> Builder {
    Fd d = OpenOrFail(dev, O_WRONLY);
    uint64_t range[2] = {off, len};
    if (::ioctl(d.get(), cmd, range) < 0) fail(errno, cmdName, {}, dev);
    return nullptr;
  });
}
Napi::Value BlkDiscard(const Napi::CallbackInfo& info) { return BlkRange(info, BLKDISCARD, "BLKDISCARD"); }
Napi::Value BlkZeroOut(const Napi::CallbackInfo& info) { return BlkRange(info, BLKZEROOUT, "BLKZEROOUT"); }

// blkFlush(device): fsync on the block device writes back its page cache and sends a cache flush.
Napi::Value BlkFlush(const Napi::CallbackInfo& info) {
  std::string dev = ArgString(info, 0, "device");
  return Queue(info.Env(), "blkFlush", [=]() -> Builder {
    Fd d = OpenOrFail(dev, O_RDONLY);
    if (::fsync(d.get()) < 0) fail(errno, "fsync", {}, dev);
    return nullptr;
  });
}

Napi::Value Mount(const Napi::CallbackInfo& info) {
  std::string source = ArgString(info, 0, "source");
  std::string target = ArgString(info, 1, "target");
  std::string fstype = ArgString(info, 2, "fstype");
  uint64_t flags = info.Length() > 3 && !info[3].IsUndefined() ? ArgU64(info, 3, "flags") : 0;
  std::string data = info.Length() > 4 && !info[4].IsUndefined() ? ArgString(info, 4, "data") : std::string();
  return Queue(info.Env(), "mount", [=]() -> Builder {
    if (::mount(source.c_str(), target.c_str(), fstype.empty() ? nullptr : fstype.c_str(), flags,
                data.empty() ? nullptr : data.c_str()) < 0)
      fail(errno, "mount", {}, target);
    return nullptr;
  });
}

Napi::Value Umount(const Napi::CallbackInfo& info) {
  std::string target = ArgString(info, 0, "target");
  uint64_t flags = info.Length() > 1 && !info[1].IsUndefined() ? ArgU64(info, 1, "flags") : 0;
  return Queue(info.Env(), "umount2", [=]() -> Builder {
    if (::umount2(target.c_str(), static_cast<int>(flags)) < 0) fail(errno, "umount2", {}, target);
    return nullptr;
  });
}

}  // namespace

void InitSys(Napi::Env env, Napi::Object e) {
  e.Set("loopGetFree", Napi::Function::New(env, LoopGetFree, "loopGetFree"));
  e.Set("loopAttach", Napi::Function::New(env, LoopAttach, "loopAttach"));
  e.Set("loopDetach", Napi::Function::New(env, LoopDetach, "loopDetach"));
  e.Set("loopSetCapacity", Napi::Function::New(env, LoopSetCapacity, "loopSetCapacity"));
  e.Set("loopSetAutoclear", Napi::Function::New(env, LoopSetAutoclear, "loopSetAutoclear"));
  e.Set("loopBackingFile", Napi::Function::New(env, LoopBackingFile, "loopBackingFile"));
  e.Set("blkSize", Napi::Function::New(env, BlkSize, "blkSize"));
  e.Set("blkDiscard", Napi::Function::New(env, BlkDiscard, "blkDiscard"));
  e.Set("blkZeroOut", Napi::Function::New(env, BlkZeroOut, "blkZeroOut"));
  e.Set("blkFlush", Napi::Function::New(env, BlkFlush, "blkFlush"));
  e.Set("mount", Napi::Function::New(env, Mount, "mount"));
  e.Set("umount", Napi::Function::New(env, Umount, "umount"));
  Napi::Object c = Napi::Object::New(env);
  c.Set("MS_RDONLY", Napi::Number::New(env, static_cast<double>(MS_RDONLY)));
  c.Set("MS_NOSUID", Napi::Number::New(env, static_cast<double>(MS_NOSUID)));
  c.Set("MS_NODEV", Napi::Number::New(env, static_cast<double>(MS_NODEV)));
  c.Set("MS_NOEXEC", Napi::Number::New(env, static_cast<double>(MS_NOEXEC)));
  c.Set("MS_REMOUNT", Napi::Number::New(env, static_cast<double>(MS_REMOUNT)));
  c.Set("MS_BIND", Napi::Number::New(env, static_cast<double>(MS_BIND)));
  c.Set("MS_NOATIME", Napi::Number::New(env, static_cast<double>(MS_NOATIME)));
  c.Set("MNT_FORCE", Napi::Number::New(env, static_cast<double>(MNT_FORCE)));
  c.Set("MNT_DETACH", Napi::Number::New(env, static_cast<double>(MNT_DETACH)));
  c.Set("MNT_EXPIRE", Napi::Number::New(env, static_cast<double>(MNT_EXPIRE)));
  c.Set("UMOUNT_NOFOLLOW", Napi::Number::New(env, static_cast<double>(UMOUNT_NOFOLLOW)));
  e.Set("sysConstants", c);
}

}  // namespace tj
