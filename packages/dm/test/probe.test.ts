// The device-mapper probe without a kernel: the decision on injected facts (a control node that gives ENODEV,
// /proc/misc without device-mapper, not root, no CAP_SYS_ADMIN, the addon missing, a working one), the fact
// gathering on injected paths through the real addon, and a real c 10 236 node in a temporary directory —
// which must agree with /proc/misc, whatever this host's kernel is.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { NativeError } from '@thinjournal/native';
import { ThinjournalError } from '@thinjournal/spec';
import {
  DM_CONTROL_PATH, KernelBackend, decideDeviceMapper, gatherDmFacts, loadNative, miscMinor, probeDeviceMapper, requireKernelBackend,
  type DmFacts,
} from '../src/index.js';

const MISC_WITHOUT_DM = '234 btrfs-control\n237 loop-control\n229 fuse\n';
const MISC_WITH_DM = '236 device-mapper\n237 loop-control\n';

function nativeError(syscall: 'open' | 'DM_VERSION', code: string, errno: number, p = DM_CONTROL_PATH): NativeError {
  return Object.assign(new Error(`${syscall} ${p}: ${code}`), { code, errno, syscall, path: p });
}

function failed(syscall: 'open' | 'DM_VERSION', code: string, errno: number, more: Partial<DmFacts> = {}): DmFacts {
  const controlPath = more.controlPath ?? DM_CONTROL_PATH;
  return {
    controlPath, procMisc: MISC_WITHOUT_DM, uid: 0,
    native: { kind: 'probed', result: { ok: false, error: nativeError(syscall, code, errno, controlPath) } },
    ...more,
  };
}

function withTmp<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-probe-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a control node that gives ENODEV, /proc/misc without device-mapper: unavailable, and the sentence says why', () => {
  const facts = failed('open', 'ENODEV', 19);
  const p = decideDeviceMapper(facts);
  assert.is(p.available, false);
  assert.is(p.reason, 'no device-mapper in this kernel: /dev/mapper/control exists but opening it gives ENODEV, and /proc/misc lists no device-mapper');
  assert.ok(!p.available && facts.native.kind === 'probed' && !facts.native.result.ok && p.cause === facts.native.result.error, 'the native error is the cause');
  assert.is(decideDeviceMapper({ ...facts, procMisc: null }).reason, 'no device-mapper in this kernel: /dev/mapper/control exists but opening it gives ENODEV');
});

test('ENODEV while /proc/misc lists device-mapper: the node names another device, and the right one is named', () => {
  const p = decideDeviceMapper(failed('open', 'ENODEV', 19, { procMisc: MISC_WITH_DM }));
  assert.is(p.available, false);
  assert.is(p.reason, "/dev/mapper/control is not this kernel's device-mapper node: opening it gives ENODEV, but /proc/misc lists device-mapper as misc minor 236 (mknod /dev/mapper/control c 10 236)");
});

test('no control node: /proc/misc tells "no device-mapper" from "nothing made the node"', () => {
  assert.is(decideDeviceMapper(failed('open', 'ENOENT', 2)).reason, 'no device-mapper here: /dev/mapper/control does not exist and /proc/misc lists no device-mapper');
  assert.is(decideDeviceMapper(failed('open', 'ENOENT', 2, { procMisc: null })).reason, 'no device-mapper here: /dev/mapper/control does not exist');
  assert.is(decideDeviceMapper(failed('open', 'ENOENT', 2, { procMisc: MISC_WITH_DM })).reason,
    'device-mapper is in this kernel (misc minor 236) but /dev/mapper/control does not exist: no devtmpfs or udev made the node (mknod /dev/mapper/control c 10 236)');
});

test('not root: refused at open or at DM_VERSION', () => {
  let p = decideDeviceMapper(failed('open', 'EACCES', 13, { uid: 1000, procMisc: MISC_WITH_DM }));
  assert.is(p.available, false);
  assert.is(p.reason, 'not root: opening /dev/mapper/control gives EACCES');
  p = decideDeviceMapper(failed('DM_VERSION', 'EACCES', 13, { uid: 1000, procMisc: MISC_WITH_DM }));
  assert.is(p.reason, 'not root: DM_VERSION on /dev/mapper/control gives EACCES (device-mapper needs CAP_SYS_ADMIN)');
});

test('root without the capability or the device: the reason does not say "not root"', () => {
  const atIoctl = decideDeviceMapper(failed('DM_VERSION', 'EPERM', 1, { uid: 0, procMisc: MISC_WITH_DM }));
  assert.is(atIoctl.available, false);
  assert.match(atIoctl.reason, /^DM_VERSION on \/dev\/mapper\/control gives EPERM although this process is root: it lacks CAP_SYS_ADMIN/);
  const atOpen = decideDeviceMapper(failed('open', 'EPERM', 1, { uid: 0, procMisc: MISC_WITH_DM }));
  assert.match(atOpen.reason, /^opening \/dev\/mapper\/control gives EPERM although this process is root/);
  assert.is(decideDeviceMapper(failed('open', 'EACCES', 13, { uid: null })).reason, 'opening /dev/mapper/control gives EACCES');
});

test('a node that is not device-mapper (DM_VERSION gives ENOTTY / ENOSYS)', () => {
  assert.is(decideDeviceMapper(failed('DM_VERSION', 'ENOTTY', 25, { controlPath: '/dev/null' })).reason,
    '/dev/null is not a device-mapper control node: DM_VERSION on it gives ENOTTY');
  assert.is(decideDeviceMapper(failed('DM_VERSION', 'ENOSYS', 38, { procMisc: MISC_WITH_DM })).reason,
    "/dev/mapper/control is not a device-mapper control node: DM_VERSION on it gives ENOSYS; this kernel's is misc minor 236 (mknod /dev/mapper/control c 10 236)");
});

test('the addon missing: unavailable with the loader\'s message, whatever the kernel has', () => {
  const error = new Error('@thinjournal/native: the addon is not built (run `node build.mjs` in /x/native)');
  const facts: DmFacts = { controlPath: DM_CONTROL_PATH, procMisc: MISC_WITHOUT_DM, uid: 0, native: { kind: 'unloadable', message: error.message, error } };
  const p = decideDeviceMapper(facts);
  assert.is(p.available, false);
  assert.is(p.reason, 'the native addon is not built or cannot load: @thinjournal/native: the addon is not built (run `node build.mjs` in /x/native) (and /proc/misc lists no device-mapper)');
  assert.ok(!p.available && p.cause === error);
  assert.is(decideDeviceMapper({ ...facts, procMisc: MISC_WITH_DM }).reason, 'the native addon is not built or cannot load: @thinjournal/native: the addon is not built (run `node build.mjs` in /x/native)');
});

test('a working one: available with the version; DM_VERSION decides even where /proc/misc did not list it yet', () => {
  const facts: DmFacts = { controlPath: DM_CONTROL_PATH, procMisc: MISC_WITH_DM, uid: 0, native: { kind: 'probed', result: { ok: true, version: { major: 4, minor: 47, patch: 0 } } } };
  const p = decideDeviceMapper(facts);
  assert.ok(p.available);
  assert.is(p.reason, 'device-mapper 4.47.0 answers DM_VERSION on /dev/mapper/control');
  assert.equal(p.available ? p.version : null, { major: 4, minor: 47, patch: 0 });
  // A module that is loaded by opening the node is not in /proc/misc read before the open.
  assert.ok(decideDeviceMapper({ ...facts, procMisc: MISC_WITHOUT_DM }).available);
  // Not root is not the probe's business when DM_VERSION answered (the caller decides what it needs root for).
  assert.ok(decideDeviceMapper({ ...facts, uid: 1000 }).available);
});

test('miscMinor reads /proc/misc lines', () => {
  assert.is(miscMinor(MISC_WITH_DM), 236);
  assert.is(miscMinor(' 63 device-mapper\n'), 63);
  assert.is(miscMinor(MISC_WITHOUT_DM), null);
  assert.is(miscMinor('236 device-mapper-x\n'), null);
  assert.is(miscMinor(''), null);
  assert.is(miscMinor(MISC_WITH_DM, 'loop-control'), 237);
});

test('gatherDmFacts on injected paths, through the real addon: a missing node, /dev/null, an injected /proc/misc', () => {
  withTmp((dir) => {
    const misc = path.join(dir, 'misc');
    writeFileSync(misc, MISC_WITHOUT_DM);
    const missing = gatherDmFacts({ controlPath: path.join(dir, 'control'), procMiscPath: misc, uid: 1000 });
    assert.is(missing.procMisc, MISC_WITHOUT_DM);
    assert.is(missing.uid, 1000);
    assert.ok(missing.native.kind === 'probed' && !missing.native.result.ok);
    if (missing.native.kind === 'probed' && !missing.native.result.ok) {
      assert.is(missing.native.result.error.code, 'ENOENT');
      assert.is(missing.native.result.error.syscall, 'open');
      assert.is(missing.native.result.error.path, path.join(dir, 'control'));
    }
    assert.is(decideDeviceMapper(missing).reason, `no device-mapper here: ${path.join(dir, 'control')} does not exist and /proc/misc lists no device-mapper`);
    const devNull = probeDeviceMapper({ controlPath: '/dev/null', procMiscPath: misc });
    assert.is(devNull.reason, '/dev/null is not a device-mapper control node: DM_VERSION on it gives ENOTTY');
    assert.is(gatherDmFacts({ procMiscPath: path.join(dir, 'nope') }).procMisc, null);
  });
});

test('gatherDmFacts: an addon that cannot load, or one built before dmProbe existed, is a fact, not a throw', () => {
  const inner = new Error('@thinjournal/native: the addon is not built (run `node build.mjs` in /x)');
  const wrapped = new ThinjournalError('ERR_NATIVE_UNAVAILABLE', `@thinjournal/native cannot load: ${inner.message}`, { cause: inner });
  const f = gatherDmFacts({ loadNative: () => { throw wrapped; } });
  assert.ok(f.native.kind === 'unloadable');
  assert.is(f.native.kind === 'unloadable' ? f.native.message : '', inner.message, 'the inner message, not the wrapper\'s');
  const p = probeDeviceMapper({ loadNative: () => { throw wrapped; } });
  assert.is(p.available, false);
  assert.ok(!p.available && p.cause === wrapped);
  const stale = probeDeviceMapper({ loadNative: () => ({}) as Pick<typeof import('@thinjournal/native'), 'dmProbe'> });
  assert.match(stale.reason, /^the native addon is not built or cannot load: @thinjournal\/native has no dmProbe: it was built from older sources/);
});

test('native dmProbe: failures are values naming the call and the path; a FIFO does not block; misuse is a TypeError', () => {
  const n = loadNative();
  const r = n.dmProbe('/dev/null');
  assert.ok(!r.ok);
  if (!r.ok) {
    assert.ok(r.error instanceof Error);
    assert.is(r.error.code, 'ENOTTY');
    assert.is(r.error.syscall, 'DM_VERSION');
    assert.is(r.error.path, '/dev/null');
  }
  assert.throws(() => n.dmProbe(5 as unknown as string), (e: unknown) => e instanceof TypeError);
  withTmp((dir) => {
    const fifo = path.join(dir, 'fifo');
    if (spawnSync('mkfifo', [fifo]).status !== 0) return; // no mkfifo here: the rest needs one
    const t0 = performance.now();
    const f = n.dmProbe(fifo);
    assert.ok(!f.ok && f.error.syscall === 'DM_VERSION', 'opened at once (O_NONBLOCK), then refused the ioctl');
    assert.ok(performance.now() - t0 < 2000);
  });
});

test('a real c 10 236 node in a temporary directory: the probe agrees with /proc/misc (ENODEV on a kernel without device-mapper)', () => {
  if (process.getuid?.() !== 0) return; // mknod needs root: covered by the injected-facts tests above
  withTmp((dir) => {
    const node = path.join(dir, 'control');
    const mk = spawnSync('mknod', [node, 'c', '10', '236'], { encoding: 'utf8' });
    if (mk.status !== 0) return; // no CAP_MKNOD (a container): nothing to probe
    const facts = gatherDmFacts({ controlPath: node });
    const p = decideDeviceMapper(facts);
    const inKernel = facts.procMisc !== null && miscMinor(facts.procMisc) === 236;
    if (inKernel) {
      assert.ok(p.available, p.reason);
    } else {
      assert.is(p.available, false);
      // ENODEV where the kernel has no device-mapper; EACCES where the temporary directory is on a nodev mount.
      assert.match(p.reason, new RegExp(`^(no device-mapper in this kernel: ${node} exists but opening it gives ENODEV|opening ${node} gives EACCES)`));
    }
  });
});

test('probeDeviceMapper() is probed once per process; injected options are probed afresh', () => {
  const a = probeDeviceMapper();
  assert.is(probeDeviceMapper(), a);
  assert.is.not(probeDeviceMapper({}), a);
  assert.equal(probeDeviceMapper({}).available, a.available);
});

test('requireKernelBackend: the kernel backend where the probe says so, else ERR_NATIVE_UNAVAILABLE with the reason', () => {
  const p = probeDeviceMapper();
  if (p.available) {
    assert.ok(requireKernelBackend() instanceof KernelBackend);
    return;
  }
  try {
    requireKernelBackend('the demo needs it');
    assert.unreachable('should have thrown');
  } catch (err) {
    assert.ok(err instanceof ThinjournalError);
    assert.is(err.code, 'ERR_NATIVE_UNAVAILABLE');
    assert.is(err.message, `${p.reason} (the demo needs it)`);
    assert.is((err as ThinjournalError & { reason?: string }).reason, p.reason);
    assert.is(err.cause, p.cause);
  }
});

test.run();
