// The driver suite (test/src/driver/cases.ts) on a real kernel: loopback pools on sparse files in /tmp,
// real mounts, open file descriptors as "another process holding the device". Runs in the dmvm guest here.
import { test } from 'uvu';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { mkdir, open, rm, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import { devicePrefixFor } from '../../../packages/driver/dist/src/index.js';
import { KernelBackend, blockDeviceKernelName, xfsNospaceMaxRetriesFile } from '../../../packages/dm/dist/src/index.js';
import { defineDriverSuite, type DriverHarness } from '../driver/cases.js';
import { kernelUnavailable, removeKernelLeftovers } from './kernel-harness.js';

const OPTIONS = ['dm.loopdatasize=256M', 'dm.loopmetadatasize=16M', 'dm.basesize=64M', 'dm.fs=ext4'];
let backend: KernelBackend | null = null;
let noXfs: string | null = null;

/**
 * The xfs module is listed in /proc/filesystems only once loaded. In the dmvm guest `modprobe` finds no
 * modules, but the kernel autoloads xfs at the first xfs mount: mount one scratch XFS once, as a machine that
 * has used XFS before would have it loaded. Returns why XFS cannot be tested, or null.
 */
async function prepareXfs(b: KernelBackend): Promise<string | null> {
  const listed = () => /\txfs$/m.test(readFileSync('/proc/filesystems', 'utf8'));
  if (listed()) return null;
  if (!['/usr/sbin', '/sbin'].some((d) => existsSync(`${d}/mkfs.xfs`))) return 'no mkfs.xfs (xfsprogs) on this machine';
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tjx-'));
  const img = path.join(dir, 'xfs.img');
  await truncate(img, 320 * 2 ** 20).catch(async () => { await writeFile(img, ''); await truncate(img, 320 * 2 ** 20); });
  const loop = await b.attachLoop(img);
  try {
    await b.mkfs(loop, 'xfs');
    await mkdir(path.join(dir, 'm'));
    await b.mount(loop, path.join(dir, 'm'), { fsType: 'xfs' }).catch(() => {});
    await b.umount(path.join(dir, 'm')).catch(() => {});
  } finally {
    await b.detachLoop(loop).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  }
  return listed() ? null : 'the kernel has no xfs (not listed in /proc/filesystems after an xfs mount)';
}

function harness(): DriverHarness {
  const b = (backend ??= new KernelBackend());
  return {
    kind: 'kernel',
    backend: b,
    options: OPTIONS,
    noXfs,
    async occupyLoops(n) {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'tjl-'));
      const loops: string[] = [];
      for (let i = 0; i < n; i++) {
        const f = path.join(dir, `f${i}`);
        await writeFile(f, '');
        await truncate(f, 2 ** 20);
        loops.push(await b.attachLoop(f));
      }
      return async () => {
        for (const l of loops) await b.detachLoop(l).catch(() => {});
        await rm(dir, { recursive: true, force: true });
      };
    },
    async hold(devicePath) {
      const fh = await open(devicePath, 'r');
      return async () => fh.close();
    },
    async xfsNospaceMaxRetries(devicePath) {
      return Number(readFileSync(xfsNospaceMaxRetriesFile(await blockDeviceKernelName(devicePath)), 'utf8').trim());
    },
    /** What a failed case left for `home`: mounts under it, dm devices on its loop files, the loops, the files. */
    async cleanup(home) {
      const top = home.replace(/\/home$/, '');
      const prefix = existsSync(home) ? devicePrefixFor(home) : null;
      // its devices are <prefix>-<hash> (the pool: <prefix>-pool) and the base check's <prefix>:verify
      await removeKernelLeftovers(b, top, (name) => prefix !== null && (name.startsWith(prefix + '-') || name === `${prefix}:verify`));
    },
  };
}

const why = await kernelUnavailable();
if (why) {
  console.log(`kernel driver suite skipped: ${why}`);
  test.skip('kernel driver suite', () => {});
} else {
  noXfs = await prepareXfs((backend ??= new KernelBackend()));
  defineDriverSuite(test, async () => harness());
}
test.run();
