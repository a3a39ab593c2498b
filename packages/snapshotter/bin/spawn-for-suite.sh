#!/bin/sh
# The command containerd's snapshotter testsuite spawns per test (-proxy.spawn): CMD <socket> <root>.
# Serves a fresh home at <root> on <socket> with a small loopback pool that fits the dmvm guest, and at
# SIGINT/SIGTERM drains, removes the pool and detaches its loop devices (--teardown: the home is thrown away).
# THINJOURNAL_SUITE_OPTS overrides the dm.* options (space-separated dm.key=value).
#
# In the dmvm guest (DMVM_GUEST=1) the repository is on 9p without caching, where loading Node's modules (a
# few thousand files) takes minutes; the runtime files are copied once per guest boot to a tmpfs stage and
# the daemon runs from there. THINJOURNAL_SUITE_STAGE=0 turns that off, =1 forces it.
set -eu
[ $# -eq 2 ] || { echo "usage: $0 <socket> <root>" >&2; exit 2; }
repo=$(cd "$(dirname "$0")/../../.." && pwd)
opts=${THINJOURNAL_SUITE_OPTS:-"dm.loopdatasize=2G dm.loopmetadatasize=64M dm.basesize=128M dm.fs=ext4 dm.min_free_space=0%"}
stage_default=0
[ "${DMVM_GUEST:-}" = 1 ] && stage_default=1
if [ "${THINJOURNAL_SUITE_STAGE:-$stage_default}" = 1 ]; then
  stage=${TMPDIR:-/tmp}/thinjournal-suite-stage
  (
    flock 9
    if [ ! -e "$stage/.complete" ]; then
      rm -rf "$stage" && mkdir -p "$stage"
      # Only what the daemon runs: compiled packages, the native addon, runtime dependencies (pnpm's symlinks kept).
      (cd "$repo" && tar -cf - --no-wildcards-match-slash --exclude='packages/*/src' --exclude='packages/*/test' --exclude='packages/*/dist/test' \
        --exclude='node_modules/.pnpm/typescript@*' --exclude='node_modules/.pnpm/@types+*' --exclude='node_modules/.pnpm/fast-check@*' \
        --exclude='node_modules/.pnpm/node-gyp@*' --exclude='native/src' --exclude='native/build/Release/obj.target' \
        package.json node_modules native packages) | tar -C "$stage" -xf -
      touch "$stage/.complete"
    fi
  ) 9>"${TMPDIR:-/tmp}/thinjournal-suite-stage.lock"
  repo=$stage
fi
set -- --socket "$1" --home "$2" --teardown
for o in $opts; do set -- "$@" --opt "$o"; done
exec node "$repo/packages/cli/bin/thinjournal.js" snapshotter "$@"
