#!/usr/bin/env node
// Host-side preparation for the containerd proof and benchmark; run it before the kernel tests (.ci/run does):
//   node test/containerd/prepare.mjs
// Installs with apt, only when missing: containerd (with ctr and runc), busybox-static (the image's
// busybox), golang-go and Debian's packaged containerd sources (what build-suite.sh compiles). Then builds
// containerd's snapshotter testsuite into the cache (kit.mjs suiteCachePath) when it is not there yet. It
// must run on the host: the dmvm guest runs the host's binaries and has no network.
// Prints what it did and how long each step took. Exit 1 when something could not be made.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { buildSuite, devmapperDevicesTool, suiteCachePath, KIT } from './kit.mjs';

const t0 = Date.now();
const has = (c) => spawnSync('sh', ['-c', `command -v ${c}`], { stdio: 'ignore' }).status === 0;
const installed = (p) => spawnSync('dpkg-query', ['-W', '-f=${Status}', p], { encoding: 'utf8' }).stdout?.includes('install ok installed');
const want = [];
if (!has('containerd') || !has('ctr') || !has('runc')) want.push('containerd', 'runc');
if (!installed('busybox-static')) want.push('busybox-static');
if (!has('go')) want.push('golang-go');
if (!installed('golang-github-containerd-containerd-dev')) want.push('golang-github-containerd-containerd-dev');
if (want.length) {
  if (process.getuid?.() !== 0 || !has('apt-get')) {
    console.error(`containerd prepare: missing ${want.join(' ')} and cannot apt-get install them here`);
    process.exit(1);
  }
  const t = Date.now();
  // Another apt on the machine holds dpkg's lock for a while: wait for it rather than fail.
  const apt = (args) => spawnSync('apt-get', ['-o', 'DPkg::Lock::Timeout=600', ...args], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  let r = apt(['install', '-y', '-qq', '--no-install-recommends', ...want]);
  if (r.status !== 0) {
    apt(['update', '-qq']);
    r = apt(['install', '-y', '-qq', '--no-install-recommends', ...want]);
  }
  if (r.status !== 0) {
    console.error(`containerd prepare: apt-get install ${want.join(' ')} failed`);
    process.exit(1);
  }
  console.log(`containerd prepare: installed ${want.join(' ')} in ${((Date.now() - t) / 1000).toFixed(0)} s`);
}
if (!existsSync(`${KIT}/build-suite.sh`)) {
  console.error(`containerd prepare: no kit at ${KIT}`);
  process.exit(1);
}
try {
  const b = buildSuite();
  console.log(b.built ? `containerd prepare: built the testsuite in ${b.seconds.toFixed(0)} s: ${b.bin}` : `containerd prepare: testsuite cached: ${suiteCachePath()}`);
} catch (err) {
  console.error(`containerd prepare: ${err.message}`);
  process.exit(1);
}
{
  // The benchmark's reader of containerd devmapper's device states (its crash comparison).
  const t = Date.now();
  const d = devmapperDevicesTool({ build: true });
  console.log(d.bin ? `containerd prepare: devmapper-devices tool ${d.bin} (${((Date.now() - t) / 1000).toFixed(0)} s)` : `containerd prepare: devmapper-devices tool not built: ${d.why}`);
}
console.log(`containerd prepare: done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
