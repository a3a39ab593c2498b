// The device-mapper ioctl path shared by the exported dm calls (dm.cc) and the plan executor (plan.cc).
// Every dm ioctl goes through DoIoctl (or DoIoctlOn, for a descriptor the caller opened): one buffer layout,
// one place that fills the header, checks DM_BUFFER_FULL_FLAG and turns a failure into a SysError naming the
// command and the device.
#pragma once

#include <linux/dm-ioctl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common.h"

namespace tj {

struct DmCall {
  unsigned long cmd = 0;
  const char* cmdName = "";
  std::string name;
  std::string uuid;
  uint32_t flags = 0;
  uint32_t eventNr = 0;
  uint32_t targetCount = 0;   // DM_TABLE_LOAD: number of dm_target_spec records in the payload
  std::vector<char> payload;  // bytes after struct dm_ioctl (8-byte aligned start)
  bool queryOnly = false;     // may be repeated with a bigger buffer when the kernel says it was too small
  size_t outRoom = 16 * 1024; // room for the kernel's reply beyond the payload
};

struct DmReply {
  std::vector<uint64_t> mem;  // uint64_t: keeps the buffer 8-byte aligned as the kernel expects
  dm_ioctl* io() { return reinterpret_cast<dm_ioctl*>(mem.data()); }
  const char* base() { return reinterpret_cast<const char*>(mem.data()); }
  // The reply's data area: [data_start, data_size).
  const char* data() { return base() + io()->data_start; }
  size_t dataLen() { return io()->data_size > io()->data_start ? io()->data_size - io()->data_start : 0; }
};

// Plain copy of a reply header, built into JS on the main thread.
struct Info {
  std::string name, uuid;
  uint32_t major = 0, minor = 0, flags = 0, eventNr = 0, targetCount = 0;
  int32_t openCount = 0;
};

struct TargetLine {
  uint64_t start = 0, length = 0;
  std::string type, params;
};

// On the process's control descriptor (/dev/mapper/control, opened once and kept).
DmReply DoIoctl(const DmCall& c);
// On a descriptor the caller opened (dmProbe's own).
DmReply DoIoctlOn(int fd, const DmCall& c);
DmCall Call(unsigned long cmd, const char* cmdName, const std::string& name, uint32_t flags = 0);
Info InfoOf(DmReply& r);
Napi::Object InfoJs(Napi::Env env, const Info& i);
std::vector<TargetLine> ParseTargets(DmReply& r);
// JS array of {start,length,type,params} → lines (a TypeError on misuse, on the JS thread).
std::vector<TargetLine> ArgTable(const Napi::Env& env, const Napi::Value& v);
// DM_TABLE_LOAD payload: each spec's `next` is the distance to the next spec, 8-byte aligned.
std::vector<char> EncodeTable(const std::vector<TargetLine>& ts, const std::string& name);
// <dir>/<name> as a block node of major:minor: made when missing, replaced when it names another device.
std::string EnsureNode(const std::string& dir, const std::string& name, uint32_t maj, uint32_t min);
// Removes <dir>/<name> only when it is a block node.
void RemoveNode(const std::string& dir, const std::string& name);
// DM_DEV_CREATE; with a table also DM_TABLE_LOAD + resume, and the device is removed again when either
// fails (nothing half-made). With nodeDir, its node is made there (and returned in *node).
Info CreateDevice(const std::string& name, const std::string& uuid, bool readOnly, const std::vector<TargetLine>* table,
                  const std::string& nodeDir, std::string* node);
// DM_TARGET_MSG at `sector`; true when the target replied (the text in *out). Never repeated: a message has
// effects, so a reply too big for the buffer is ENOBUFS, not a retry.
bool TargetMessage(const std::string& name, uint64_t sector, const std::string& msg, std::string* out);

}  // namespace tj
