// Shared pieces of the containerd proof and benchmark (test/CONTAINERD.md):
//  - the cached build of containerd's snapshotter testsuite (../shared/containerd/build-suite.sh), made on the
//    host and run wherever the kernel tests run (the dmvm guest sees the host's file system);
//  - the names of the suite's tests, read from the very sources the binary is compiled from;
//  - a parser of `go test -v` lines into one result per suite test;
//  - a loopback thin pool made with losetup + dmsetup only (no thinjournal code), for containerd's built-in
//    devmapper snapshotter;
//  - a private containerd (own root, state, sockets, config) and `ctr` against it;
//  - whether thinjournal's snapshotter service is present on this branch.
// Everything here that touches the kernel needs root and a real device-mapper.
import { spawn, spawnSync, execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const KIT = path.resolve(ROOT, '..', 'shared', 'containerd');
export const SPAWN_WRAPPER = path.join(ROOT, 'packages', 'snapshotter', 'bin', 'spawn-for-suite.sh');
export const CLI = path.join(ROOT, 'packages', 'cli', 'bin', 'thinjournal.js');
const GOSRC = '/usr/share/gocode/src/github.com/containerd/containerd';
const TESTSUITE_GO = path.join(GOSRC, 'snapshots', 'testsuite', 'testsuite.go');
const DEV_PKG = 'golang-github-containerd-containerd-dev';

function dpkgVersion(pkg) {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Version}', pkg], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/**
 * Where the suite binary is cached: keyed by the kit's build script and Go file and by the packaged
 * containerd sources' version, so a change to any of them gives a new path (and a rebuild), and an unchanged
 * kit reuses the binary across clones. Under the invoking user's cache, which the dmvm guest sees read-only.
 */
export function suiteCachePath() {
  const h = createHash('sha256');
  for (const f of ['build-suite.sh', 'suite_test.go']) h.update(existsSync(path.join(KIT, f)) ? readFileSync(path.join(KIT, f)) : `missing ${f}`);
  h.update(dpkgVersion(DEV_PKG) ?? 'no-dev-package');
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'thinjournal', 'containerd-suite', h.digest('hex').slice(0, 16), 'suite.test');
}

/** The cached suite binary, or null with why it is not there. */
export function suiteBinary() {
  if (!existsSync(path.join(KIT, 'build-suite.sh'))) return { bin: null, why: `no containerd kit at ${KIT}` };
  const bin = suiteCachePath();
  if (existsSync(bin)) return { bin, why: null };
  return { bin: null, why: `containerd's testsuite is not built (${bin} missing): run \`node test/containerd/prepare.mjs\` on the host first (.ci/run does)` };
}

/**
 * Builds the suite binary into the cache when it is missing (build-suite.sh apt-installs Go and the sources
 * when they are missing). Written to a temporary name and renamed, so a half-written binary is never used.
 */
export function buildSuite({ log = (s) => process.stderr.write(s) } = {}) {
  const bin = suiteCachePath();
  if (existsSync(bin)) return { bin, built: false, seconds: 0 };
  mkdirSync(path.dirname(bin), { recursive: true });
  const tmp = `${bin}.${process.pid}.tmp`;
  const t = Date.now();
  const r = spawnSync(path.join(KIT, 'build-suite.sh'), [tmp], { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  log(r.stdout + r.stderr);
  if (r.status !== 0) {
    rmSync(tmp, { force: true });
    throw new Error(`build-suite.sh exited ${r.status}`);
  }
  // The sources' version is part of the key: build-suite.sh may just have installed them.
  const final = suiteCachePath();
  mkdirSync(path.dirname(final), { recursive: true });
  renameSync(tmp, final);
  return { bin: final, built: true, seconds: (Date.now() - t) / 1000 };
}

/**
 * The suite's test names in order, from the testsuite source the binary is built from (its `t.Run("Name", …)`
 * calls in SnapshotterSuite), so a test the suite adds or drops is noticed rather than assumed.
 */
export function suiteTestNames() {
  const src = readFileSync(TESTSUITE_GO, 'utf8');
  const body = src.slice(src.indexOf('func SnapshotterSuite('));
  const end = body.indexOf('\n}\n');
  return [...body.slice(0, end).matchAll(/t\.Run\("([^"]+)"/g)].map((m) => m[1]);
}

/**
 * `go test -v` output → Map(name → { status: PASS|FAIL|SKIP, seconds, log }). Only the suite's subtests
 * (TestProxySnapshotterSuite/<Name>) are taken. `log` is what the test printed (t.Log, t.Skip, t.Error):
 * Go streams it between the test's `=== RUN`/`=== CONT` line and its result line, and older Go prints it
 * indented under the result line; both are collected. Lines are attributed to the test that ran last, which
 * is exact with -test.parallel 1.
 */
export function parseSuiteOutput(text) {
  const results = new Map();
  const logs = new Map();
  const lines = text.split('\n');
  let current = null;
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i];
    const run = /^\s*=== (RUN|CONT)\s+TestProxySnapshotterSuite\/(\S+)$/.exec(l);
    if (run) {
      current = run[2];
      if (!logs.has(current)) logs.set(current, []);
      continue;
    }
    const m = /^(\s*)--- (PASS|FAIL|SKIP): TestProxySnapshotterSuite\/(\S+) \(([\d.]+)s\)$/.exec(l);
    if (m) {
      const indent = m[1].length;
      const log = logs.get(m[3]) ?? [];
      for (let j = i + 1; j < lines.length; j++) {
        const n = lines[j];
        if (n.trim() === '' || n.length - n.trimStart().length <= indent || /^\s*(---|===) /.test(n)) break;
        log.push(n);
        i = j;
      }
      results.set(m[3], { status: m[2], seconds: Number(m[4]), log: log.map((x) => x.trim()).filter(Boolean).join('\n') });
      current = null;
      continue;
    }
    if (current && !/^\s*(---|===) /.test(l)) logs.get(current).push(l);
  }
  return results;
}

/** The reason of a SKIP: its log line without Go's `file.go:NN: ` prefix. */
export function skipReason(result) {
  return (result.log.split('\n').find((l) => l) ?? '').replace(/^\S+\.go:\d+: /, '') || 'no reason given';
}

/** Runs the suite binary; its output streams to `echo` (prefixed) and is returned whole. */
export function runSuite(bin, args, { echo = (s) => process.stdout.write(s), env = process.env, timeoutMs = 60 * 60_000 } = {}) {
  return new Promise((resolve) => {
    const t = Date.now();
    const child = spawn(bin, ['-test.root', '-test.v', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let pending = '';
    const take = (d) => {
      out += d;
      pending += d;
      const cut = pending.lastIndexOf('\n');
      if (cut >= 0) {
        echo(pending.slice(0, cut).split('\n').map((x) => `  | ${x}\n`).join(''));
        pending = pending.slice(cut + 1);
      }
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (pending) echo(`  | ${pending}\n`);
      resolve({ code, signal, out, seconds: (Date.now() - t) / 1000 });
    });
  });
}

/** Commands these pieces run; the names of those this machine lacks. */
export function missingTools(extra = []) {
  const need = ['containerd', 'ctr', 'runc', 'dmsetup', 'losetup', 'mkfs.ext4', 'mount', ...extra];
  return need.filter((c) => spawnSync('sh', ['-c', `command -v ${c}`], { stdio: 'ignore' }).status !== 0);
}

/**
 * thinjournal's snapshotter service, or why it cannot be used: the suite wrapper the service provides
 * (packages/snapshotter/bin/spawn-for-suite.sh <socket> <root>) and the CLI's `snapshotter` command.
 */
export function thinjournalService() {
  if (!existsSync(SPAWN_WRAPPER)) return { ok: false, why: `thinjournal's snapshotter service is not on this branch: ${path.relative(ROOT, SPAWN_WRAPPER)} is missing` };
  const r = spawnSync(process.execPath, [CLI, 'snapshotter', '--help'], { encoding: 'utf8' });
  if (r.status !== 0) return { ok: false, why: `\`thinjournal snapshotter --help\` exits ${r.status}: ${(r.stderr || r.stdout).trim().split('\n')[0]}` };
  return { ok: true, why: null };
}

export async function sh(cmd, args, opts = {}) {
  try {
    const r = await execFileP(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
    return r.stdout;
  } catch (err) {
    throw new Error(`${cmd} ${args.join(' ')}: ${(err.stderr || err.message).trim()}`);
  }
}

/** cgroup2 on /sys/fs/cgroup, which runc needs (the dmvm guest boots without it). */
export async function ensureCgroup2() {
  const mounts = readFileSync('/proc/self/mounts', 'utf8');
  if (/ \/sys\/fs\/cgroup cgroup2 /.test(mounts)) return;
  mkdirSync('/sys/fs/cgroup', { recursive: true });
  await sh('mount', ['-t', 'cgroup2', 'none', '/sys/fs/cgroup']);
}

/**
 * A thin pool on two sparse loopback files under `dir`, made with losetup and dmsetup alone. remove() takes
 * away every dm device named `<name>-…` (containerd's devmapper names its thin devices `<pool>-snap-<id>`),
 * the pool and its loop devices.
 */
export async function makeThinPool(dir, name, { dataBytes = 4 * 2 ** 30, metaBytes = 128 * 2 ** 20, blockSectors = 128 } = {}) {
  mkdirSync(dir, { recursive: true });
  const meta = path.join(dir, 'meta'), data = path.join(dir, 'data');
  for (const [f, n] of [[meta, metaBytes], [data, dataBytes]]) {
    writeFileSync(f, '');
    spawnSync('truncate', ['-s', String(n), f]);
  }
  const loops = [];
  for (const f of [meta, data]) loops.push((await sh('losetup', ['-f', '--show', f])).trim());
  const sectors = dataBytes / 512;
  await sh('dmsetup', ['create', name, '--table', `0 ${sectors} thin-pool ${loops[0]} ${loops[1]} ${blockSectors} ${32768} 1 skip_block_zeroing`]);
  return {
    name,
    loops,
    async remove() {
      for (let pass = 0; pass < 5; pass++) {
        const names = (await sh('dmsetup', ['ls']).catch(() => '')).split('\n').map((l) => l.split(/\s+/)[0]).filter((n) => n && (n === name || n.startsWith(`${name}-`)));
        if (names.length === 0) break;
        // thin devices before the pool
        names.sort((a, b) => (a === name) - (b === name));
        for (const n of names) await sh('dmsetup', ['remove', n]).catch(() => {});
      }
      for (const l of loops) await sh('losetup', ['-d', l]).catch(() => {});
    },
  };
}

/** The dm device names that start with `prefix`. */
export async function dmNames(prefix) {
  return (await sh('dmsetup', ['ls']).catch(() => '')).split('\n').map((l) => l.split(/\s+/)[0]).filter((n) => n && n.startsWith(prefix));
}

/**
 * A containerd of its own under `dir` (root, state, gRPC and ttrpc sockets), the CRI plugin disabled (no
 * network), with `devmapper` (its built-in devmapper snapshotter on a pool) and/or `proxy` (proxy plugins,
 * name → socket) configured. Resolves once `ctr version` answers.
 */
export async function startContainerd(dir, { devmapper, proxy = {}, log = path.join(dir, 'containerd.log'), readyMs = 180_000 } = {}) {
  mkdirSync(dir, { recursive: true });
  const sock = path.join(dir, 'c.sock');
  const q = JSON.stringify;
  let cfg = `version = 2
root = ${q(path.join(dir, 'root'))}
state = ${q(path.join(dir, 'state'))}
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = ${q(sock)}
[ttrpc]
  address = ${q(sock + '.ttrpc')}
[plugins."io.containerd.internal.v1.opt"]
  path = ${q(path.join(dir, 'opt'))}
`;
  if (devmapper) {
    cfg += `[plugins."io.containerd.snapshotter.v1.devmapper"]
  pool_name = ${q(devmapper.pool)}
  root_path = ${q(devmapper.root)}
  base_image_size = ${q(devmapper.baseImageSize ?? '64MB')}
  discard_blocks = false
`;
  }
  const names = Object.keys(proxy);
  if (names.length) cfg += '[proxy_plugins]\n';
  for (const n of names) cfg += `  [proxy_plugins.${q(n)}]\n    type = "snapshot"\n    address = ${q(proxy[n])}\n`;
  const config = path.join(dir, 'config.toml');
  writeFileSync(config, cfg);
  const fd = openSync(log, 'a');
  const child = spawn('containerd', ['--config', config], { stdio: ['ignore', fd, fd], env: { ...process.env, DM_DISABLE_UDEV: '1' } });
  let exited = null;
  child.on('exit', (code, signal) => (exited = { code, signal }));
  const ctr = (args, opts = {}) => sh('ctr', ['--address', sock, ...args], { timeout: opts.timeout ?? 600_000, ...opts });
  const t = Date.now();
  for (;;) {
    if (exited) throw new Error(`containerd exited ${exited.code ?? exited.signal} before answering; log:\n${readFileSync(log, 'utf8').slice(-3000)}`);
    if (existsSync(sock)) {
      const r = spawnSync('ctr', ['--address', sock, 'version'], { stdio: 'ignore', timeout: 30_000 });
      if (r.status === 0) break;
    }
    if (Date.now() - t > readyMs) {
      child.kill('SIGKILL');
      throw new Error(`containerd did not answer within ${readyMs} ms; log:\n${readFileSync(log, 'utf8').slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    sock,
    log,
    child,
    startSeconds: (Date.now() - t) / 1000,
    ctr,
    async stop() {
      if (exited) return;
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await done;
      clearTimeout(timer);
    },
  };
}

/** A fresh temporary directory (in the dmvm guest /tmp is RAM, which is where the peer's pool files go). */
export function tmpDir(prefix) {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

const DMDEV_SRC = path.join(ROOT, 'test', 'containerd', 'devmapper-devices', 'main.go');

/**
 * The devmapper-devices tool (test/containerd/devmapper-devices/main.go: containerd's own devmapper pool
 * metadata code, listing its devices and their states), built on the host into the cache next to the suite
 * binary, keyed by the Go file and the packaged sources' version. Returns its path, or null with why not.
 */
export function devmapperDevicesTool({ build = false } = {}) {
  const h = createHash('sha256');
  h.update(readFileSync(DMDEV_SRC));
  h.update(dpkgVersion(DEV_PKG) ?? 'no-dev-package');
  const base = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  const bin = path.join(base, 'thinjournal', 'devmapper-devices', h.digest('hex').slice(0, 16), 'devmapper-devices');
  if (existsSync(bin)) return { bin, why: null };
  if (!build) return { bin: null, why: `${bin} is not built: run \`node test/containerd/prepare.mjs\` on the host` };
  if (!existsSync(path.join(GOSRC, 'snapshots', 'devmapper'))) return { bin: null, why: `no packaged containerd sources (${DEV_PKG})` };
  const gp = mkdtempSync(path.join(os.tmpdir(), 'tj-gopath-'));
  try {
    mkdirSync(path.join(gp, 'src', 'thinjournal.local', 'devmapper-devices'), { recursive: true });
    writeFileSync(path.join(gp, 'src', 'thinjournal.local', 'devmapper-devices', 'main.go'), readFileSync(DMDEV_SRC));
    mkdirSync(path.dirname(bin), { recursive: true });
    const tmp = `${bin}.${process.pid}.tmp`;
    const env = { ...process.env, GO111MODULE: 'off', GOPATH: `${gp}:/usr/share/gocode`, GOCACHE: process.env.GOCACHE || path.join(os.homedir(), '.cache', 'go-build'), GOFLAGS: '' };
    const r = spawnSync('go', ['build', '-o', tmp, 'thinjournal.local/devmapper-devices'], { env, encoding: 'utf8' });
    if (r.status !== 0) return { bin: null, why: `go build devmapper-devices: ${r.stderr || r.error?.message}` };
    renameSync(tmp, bin);
    return { bin, why: null };
  } finally {
    rmSync(gp, { recursive: true, force: true });
  }
}
