#!/bin/sh
# The command containerd's snapshotter testsuite spawns per test (-proxy.spawn): CMD <socket> <root>.
# Serves a fresh home at <root> on <socket> with a small loopback pool that fits the dmvm guest, and at
# SIGINT/SIGTERM drains, removes the pool and detaches its loop devices (--teardown: the home is thrown away).
# THINJOURNAL_SUITE_OPTS overrides the dm.* options (space-separated dm.key=value).
set -eu
[ $# -eq 2 ] || { echo "usage: $0 <socket> <root>" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
opts=${THINJOURNAL_SUITE_OPTS:-"dm.loopdatasize=2G dm.loopmetadatasize=64M dm.basesize=256M dm.fs=ext4 dm.min_free_space=0%"}
set -- --socket "$1" --home "$2" --teardown
for o in $opts; do set -- "$@" --opt "$o"; done
exec node "$here/../../cli/bin/thinjournal.js" snapshotter "$@"
