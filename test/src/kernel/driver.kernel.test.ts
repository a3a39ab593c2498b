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
import { kernelUnavailable, prepareXfs, removeKernelLeftovers } from './kernel-harness.js';

const OPTIONS = ['dm.loopdatasize=256M', 'dm.loopmetadatasize=16M', 'dm.basesize=64M', 'dm.fs=ext4'];
let backend: KernelBackend | null = null;
let noXfs: string | null = null;


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
