// The driver suite (test/src/driver/cases.ts) on a real kernel: loopback pools on sparse files in /tmp,
// real mounts, open file descriptors as "another process holding the device". Runs in the dmvm guest here.
import { test } from 'uvu';
import { existsSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { open, readFile, readdir, rm } from 'node:fs/promises';
import { devicePrefixFor } from '../../../packages/driver/dist/src/index.js';
import { KernelBackend, errnoOf, parseMountInfo } from '../../../packages/dm/dist/src/index.js';
import { defineDriverSuite, type DriverHarness } from '../driver/cases.js';
import { kernelUnavailable } from './kernel-harness.js';

const OPTIONS = ['dm.loopdatasize=256M', 'dm.loopmetadatasize=16M', 'dm.basesize=64M', 'dm.fs=ext4'];
let backend: KernelBackend | null = null;

function harness(): DriverHarness {
  const b = (backend ??= new KernelBackend());
  return {
    kind: 'kernel',
    backend: b,
    options: OPTIONS,
    async hold(devicePath) {
      const fh = await open(devicePath, 'r');
      return async () => fh.close();
    },
    async xfsNospaceMaxRetries(devicePath) {
      const { rdev } = statSync(devicePath);
      const bdev = path.basename(realpathSync(`/sys/dev/block/${Math.floor(rdev / 256) & 0xfff}:${(rdev & 0xff) | (Math.floor(rdev / 4096) & 0xfff00)}`));
      return Number(readFileSync(`/sys/fs/xfs/${bdev}/error/metadata/ENOSPC/max_retries`, 'utf8').trim());
    },
    /** What a failed case left for `home`: mounts under it, dm devices on its loop files, the loops, the files. */
    async cleanup(home) {
      const top = home.replace(/\/home$/, '');
      const mounts = parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'))
        .filter((m) => m.mountPoint.startsWith(top + '/'))
        .sort((x, y) => y.mountPoint.length - x.mountPoint.length);
      for (const m of mounts) await b.umount(m.mountPoint, { detach: true }).catch(() => {});
      // Devices stack (thins on the pool): remove what can go, repeat while that makes progress.
      const prefix = existsSync(home) ? devicePrefixFor(home) : null;
      for (let pass = 0; prefix && pass < 6; pass++) {
        const mine = (await b.listDevices()).map((d) => d.name).filter((n) => n.startsWith(prefix + '-')).sort((x) => (x.endsWith('-pool') ? 1 : -1));
        if (mine.length === 0) break;
        for (const n of mine) {
          await b.resume(n).catch(() => {});
          await b.remove(n).catch((err) => { if (errnoOf(err) !== 'EBUSY' && errnoOf(err) !== 'ENXIO') throw err; });
        }
      }
      for (const ent of await readdir('/sys/block')) {
        if (!ent.startsWith('loop')) continue;
        const backing = await readFile(`/sys/block/${ent}/loop/backing_file`, 'utf8').catch(() => '');
        if (backing.startsWith(top + '/')) await b.detachLoop(`/dev/${ent}`).catch(() => {});
      }
      await rm(top, { recursive: true, force: true });
    },
  };
}

const why = await kernelUnavailable();
if (why) {
  console.log(`kernel driver suite skipped: ${why}`);
  test.skip('kernel driver suite', () => {});
} else {
  defineDriverSuite(test, async () => harness());
}
test.run();
