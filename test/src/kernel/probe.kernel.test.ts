// probeDeviceMapper on a real device-mapper: available, with the kernel's interface version (the same as
// DM_VERSION through the backend, and as `dmsetup version`'s driver line); and, on nodes made in a temporary
// directory, that the probe follows the device a node names, not its file name — c 10 <dm's minor> works
// anywhere, another misc device or an unregistered minor does not, and the reason names dm's real minor.
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KernelBackend, miscMinor, probeDeviceMapper, requireKernelBackend } from '../../../packages/dm/dist/src/index.js';
import { kernelUnavailable } from './kernel-harness.js';

const run = promisify(execFile);
const why = await kernelUnavailable();

function withNodes(fn: (mk: (name: string, minor: number) => string) => void): void {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tjk-probe-'));
  try {
    fn((name, minor) => {
      const p = path.join(dir, name);
      const r = spawnSync('mknod', [p, 'c', '10', String(minor)], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`mknod ${p} c 10 ${minor}: ${r.stderr}`);
      return p;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (why) {
  console.log(`probe kernel tests skipped: ${why}`);
  test.skip('device-mapper probe', () => {});
} else {
  test('the probe says available, with the kernel\'s device-mapper version', async () => {
    const p = probeDeviceMapper();
    assert.ok(p.available, p.reason);
    if (!p.available) return;
    const v = await new KernelBackend().version();
    assert.equal(p.version, v, 'the same DM_VERSION the backend issues');
    assert.is(p.reason, `device-mapper ${v.major}.${v.minor}.${v.patch} answers DM_VERSION on /dev/mapper/control`);
    assert.is(p.version.major, 4);
    const dmsetup = await run('dmsetup', ['version']).then((r) => r.stdout, () => null);
    if (dmsetup !== null) {
      const m = /^Driver version:\s+(\d+)\.(\d+)\.(\d+)/m.exec(dmsetup);
      assert.ok(m, dmsetup);
      assert.equal(p.version, { major: Number(m![1]), minor: Number(m![2]), patch: Number(m![3]) }, 'dmsetup agrees');
    }
    assert.ok(requireKernelBackend() instanceof KernelBackend);
  });

  test('nodes in a temporary directory: the device the node names decides, not its path', () => {
    const misc = readFileSync('/proc/misc', 'utf8');
    const dm = miscMinor(misc);
    assert.ok(dm !== null, 'device-mapper is in /proc/misc once it answered');
    const taken = new Set(misc.split('\n').map((l) => Number.parseInt(l, 10)).filter((n) => Number.isInteger(n)));
    const unregistered = [...Array(200).keys()].map((k) => 250 - k).find((n) => !taken.has(n))!;
    const loop = miscMinor(misc, 'loop-control');
    withNodes((mk) => {
      const good = probeDeviceMapper({ controlPath: mk('dm', dm!) });
      assert.ok(good.available, good.reason);
      const none = mk('none', unregistered);
      const dead = probeDeviceMapper({ controlPath: none });
      assert.is(dead.available, false);
      assert.is(dead.reason, `${none} is not this kernel's device-mapper node: opening it gives ENODEV, but /proc/misc lists device-mapper as misc minor ${dm} (mknod ${none} c 10 ${dm})`);
      if (loop !== null) {
        const other = mk('loop', loop);
        const wrong = probeDeviceMapper({ controlPath: other });
        assert.is(wrong.available, false);
        assert.match(wrong.reason, new RegExp(`^${other} is not a device-mapper control node: DM_VERSION on it gives E[A-Z]+; this kernel's is misc minor ${dm} `));
      }
    });
  });

  test('not root: the kernel refuses DM_VERSION without CAP_SYS_ADMIN, and the probe says "not root"', async () => {
    const nobody = spawnSync('id', ['-u', 'nobody'], { encoding: 'utf8' });
    if (nobody.status !== 0) return void console.log('  (no user "nobody" here: not checked)');
    // A node the unprivileged child may open, so that the ioctl's own capability check is what refuses.
    withNodes((mk) => {
      const node = mk('open', miscMinor(readFileSync('/proc/misc', 'utf8'))!);
      spawnSync('chmod', ['0666', node]);
      spawnSync('chmod', ['0755', path.dirname(node)]);
      const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../packages/dm/dist/src/index.js');
      const script = `import(${JSON.stringify(dist)}).then((m) => console.log(JSON.stringify(m.probeDeviceMapper({ controlPath: ${JSON.stringify(node)} }))))`;
      const r = spawnSync('setpriv', ['--reuid', nobody.stdout.trim(), '--regid', nobody.stdout.trim(), '--clear-groups', process.execPath, '-e', script], { encoding: 'utf8' });
      if (r.error || r.status !== 0) return void console.log(`  (could not run a probe as nobody with setpriv: ${r.error?.message ?? r.stderr.trim()}; not checked)`);
      const p: { available: boolean; reason: string } = JSON.parse(r.stdout);
      assert.is(p.available, false);
      assert.is(p.reason, `not root: DM_VERSION on ${node} gives EACCES (device-mapper needs CAP_SYS_ADMIN)`);
    });
  });
}
test.run();
