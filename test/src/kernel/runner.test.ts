// test/kernel.mjs decides where the kernel files run from probeDeviceMapper's answer, never from a file's
// existence: a control node that gives ENODEV sends them to the guest. Runs on any host (not a kernel test):
// the choice is pure, and runKernelFiles is driven with an injected probe, a fake dmvm script and a fake
// child runner, so nothing boots.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DM_CONTROL_PATH, decideDeviceMapper, probeDeviceMapper, type DeviceMapperProbe, type DmFacts } from '../../../packages/dm/dist/src/index.js';

interface Choice { how: 'direct' | 'guest' | 'skip'; why: string }
interface ChildResult { file: string; passed: number; failed: number; skipped: number; error: string | null }
type RunChild = (files: string[], opts?: { wrap?: string[]; timeoutMs?: number; env?: Record<string, string> }) => Promise<{ out: string; results: ChildResult[] }>;
interface Runner {
  chooseKernelRun(a: { mode: string | undefined; probe: DeviceMapperProbe; isRoot: boolean; guest: boolean }): Choice;
  probeHost(root: string): Promise<DeviceMapperProbe>;
  runKernelFiles(files: string[], o: { root: string; runChild: RunChild; probe?: DeviceMapperProbe; env?: Record<string, string | undefined>; isRoot?: boolean; write?: (s: string) => void; fileTimeoutMs?: number }): Promise<ChildResult[]>;
}

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../../..'); // test/dist/kernel → the repository
const runner: Runner = await import(pathToFileURL(path.join(repo, 'test', 'kernel.mjs')).href);

const enodev: DmFacts = {
  controlPath: DM_CONTROL_PATH, procMisc: '237 loop-control\n', uid: 0,
  native: { kind: 'probed', result: { ok: false, error: Object.assign(new Error('open /dev/mapper/control: ENODEV'), { code: 'ENODEV', errno: 19, syscall: 'open', path: DM_CONTROL_PATH }) } },
};
const dead = decideDeviceMapper(enodev);
const working = decideDeviceMapper({ ...enodev, procMisc: '236 device-mapper\n', native: { kind: 'probed', result: { ok: true, version: { major: 4, minor: 47, patch: 0 } } } });

test('the choice follows the probe: a dead control node goes to the guest, a working one as root runs here', () => {
  assert.equal(runner.chooseKernelRun({ mode: undefined, probe: dead, isRoot: true, guest: true }),
    { how: 'guest', why: `this host cannot run them: ${dead.reason}` });
  assert.equal(runner.chooseKernelRun({ mode: undefined, probe: working, isRoot: true, guest: true }), { how: 'direct', why: working.reason });
  assert.equal(runner.chooseKernelRun({ mode: undefined, probe: working, isRoot: false, guest: true }),
    { how: 'guest', why: `this host cannot run them: not root (${working.reason})` });
  assert.equal(runner.chooseKernelRun({ mode: undefined, probe: dead, isRoot: true, guest: false }),
    { how: 'skip', why: `${dead.reason}, and there is no ../shared/dmvm guest` });
});

test('THINJOURNAL_KERNEL=0 skips and =guest forces the guest, whatever the probe says', () => {
  for (const probe of [dead, working]) {
    assert.is(runner.chooseKernelRun({ mode: '0', probe, isRoot: true, guest: true }).how, 'skip');
    assert.is(runner.chooseKernelRun({ mode: 'guest', probe, isRoot: true, guest: true }).how, 'guest');
    assert.equal(runner.chooseKernelRun({ mode: 'guest', probe, isRoot: true, guest: false }), { how: 'skip', why: 'THINJOURNAL_KERNEL=guest but no ../shared/dmvm guest' });
  }
});

/** A repository root with a ../shared/dmvm/run-in-vm.sh next to it (never run: runChild is fake). */
function fakeLayout(): { top: string; root: string; vm: string } {
  const top = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-runner-'));
  const root = path.join(top, 'main');
  const vm = path.join(top, 'shared', 'dmvm', 'run-in-vm.sh');
  mkdirSync(path.dirname(vm), { recursive: true });
  mkdirSync(root);
  writeFileSync(vm, '#!/bin/sh\nexit 99\n');
  return { top, root, vm };
}

async function runWith(probe: DeviceMapperProbe, isRoot: boolean): Promise<{ calls: (string[] | undefined)[]; vm: string; printed: string }> {
  const { top, root, vm } = fakeLayout();
  const calls: (string[] | undefined)[] = [];
  let printed = '';
  const runChild: RunChild = async (files, opts) => {
    calls.push(opts?.wrap);
    return { out: '', results: files.map((file) => ({ file, passed: 1, failed: 0, skipped: 0, error: null })) };
  };
  try {
    const results = await runner.runKernelFiles(['a.kernel.test.js'], { root, runChild, probe, env: {}, isRoot, write: (s) => { printed += s; } });
    assert.is(results.length, 1);
    return { calls, vm, printed };
  } finally {
    rmSync(top, { recursive: true, force: true });
  }
}

test('runKernelFiles: with a dead control node it wraps the files in the dmvm script; with a working one it runs them here', async () => {
  const guest = await runWith(dead, true);
  assert.is(guest.calls.length, 1);
  assert.is(guest.calls[0]?.[0], guest.vm, 'booted the guest');
  assert.ok(guest.calls[0]?.includes('a.kernel.test.js'));
  assert.ok(guest.printed.includes(`kernel tests: booting the dmvm guest once for 1 files (this host cannot run them: ${dead.reason})`), guest.printed);
  const direct = await runWith(working, true);
  assert.equal(direct.calls, [undefined], 'ran in this host, unwrapped');
  assert.ok(direct.printed.includes(`kernel tests: running on this host's device-mapper (${working.reason})`), direct.printed);
});

test('the guest runs every file in one process: its limit is the files\' limits summed, and the guest\'s own limit is raised to match', async () => {
  const { top, root } = fakeLayout();
  const seen: { timeoutMs?: number; env?: Record<string, string> }[] = [];
  const runChild: RunChild = async (files, opts) => {
    seen.push({ ...(opts?.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}), ...(opts?.env ? { env: opts.env } : {}) });
    return { out: '', results: files.map((file) => ({ file, passed: 1, failed: 0, skipped: 0, error: null })) };
  };
  try {
    await runner.runKernelFiles(['a.kernel.test.js', 'b.kernel.test.js', 'c.kernel.test.js'], { root, runChild, probe: dead, env: {}, isRoot: true, write: () => {}, fileTimeoutMs: 60_000 });
    assert.equal(seen, [{ timeoutMs: 180_000, env: { DMVM_TIMEOUT: '480', DMVM_MEM: '2048' } }]);
    await runner.runKernelFiles(['a.kernel.test.js'], { root, runChild, probe: dead, env: { DMVM_TIMEOUT: '99', DMVM_MEM: '4096' }, isRoot: true, write: () => {}, fileTimeoutMs: 60_000 });
    assert.equal(seen[1], { timeoutMs: 60_000, env: { DMVM_TIMEOUT: '99', DMVM_MEM: '4096' } }, 'what the environment sets wins');
  } finally {
    rmSync(top, { recursive: true, force: true });
  }
});

test('a real c 10 236 node in a temporary directory, probed and handed to the runner: the guest unless /proc/misc has device-mapper', async () => {
  if (process.getuid?.() !== 0) return; // mknod needs root; the injected-facts tests above cover the choice
  const dir = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-runner-node-'));
  try {
    const node = path.join(dir, 'control');
    if (spawnSync('mknod', [node, 'c', '10', '236']).status !== 0) return; // no CAP_MKNOD here
    const probe = probeDeviceMapper({ controlPath: node });
    const { calls, vm } = await runWith(probe, true);
    if (probe.available) assert.equal(calls, [undefined], probe.reason);
    else assert.is(calls[0]?.[0], vm, probe.reason);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('probeHost: the built packages/dm\'s probe, or "unavailable" with the reason when packages/dm is not built', async () => {
  const p = await runner.probeHost(repo);
  assert.is(p.available, probeDeviceMapper().available);
  const { top, root } = fakeLayout();
  try {
    const q = await runner.probeHost(root);
    assert.is(q.available, false);
    assert.match(q.reason, /^packages\/dm is not built \(run tsc -b\): /);
  } finally {
    rmSync(top, { recursive: true, force: true });
  }
});

test.run();
