#!/bin/sh
# spawn-containerd.sh <socket> <root> — a containerd of its own serving its API on <socket>, everything
# under <root>: the same contract as the service's spawn-for-suite.sh (foreground, socket once serving,
# exit on SIGINT), for proving the suite's -proxy.spawn mode on containerd's own snapshotters:
#   THINJOURNAL_SUITE_SPAWN=test/containerd/spawn-containerd.sh THINJOURNAL_SUITE_NAME=native …
# (the suite's requests then name containerd's snapshotter THINJOURNAL_SUITE_NAME).
set -eu
sock=$1 root=$2
mkdir -p "$root"
cat > "$root/config.toml" <<CFG
version = 2
root = "$root/root"
state = "$root/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$root/opt"
CFG
exec containerd --config "$root/config.toml" --log-level warn
