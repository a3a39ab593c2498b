// The snapshotter's contract (packages/snapshotter/test/contract.ts) on a real kernel: loopback pools on
// sparse files, what Mounts returns mounted with mount(8) as containerd mounts it, files written in a layer,
// committed and read back in a child and a read-only view. Runs in the dmvm guest here.
import { test } from 'uvu';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmdirSync } from 'node:fs';
import { open } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { devicePrefixFor } from '../../../packages/driver/dist/src/index.js';
import { KernelBackend } from '../../../packages/dm/dist/src/index.js';
import { defineContract, type ContractHarness, type MountOut } from '../../../packages/snapshotter/dist/test/contract.js';
import { kernelUnavailable, removeKernelLeftovers } from './kernel-harness.js';

const OPTIONS = ['dm.loopdatasize=512M', 'dm.loopmetadatasize=16M', 'dm.basesize=64M', 'dm.fs=ext4', 'dm.min_free_space=0%'];
let backend: KernelBackend | null = null;
const homes: string[] = [];

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error?.message || `exit ${r.status}`}`);
}

function harness(): ContractHarness {
  const b = (backend ??= new KernelBackend());
  return {
    kind: 'kernel',
    backend: b,
    options: OPTIONS,
    track: (home) => homes.push(home),
    async hold(devicePath) {
      const fh = await open(devicePath, 'r');
      return async () => fh.close();
    },
    async withMounted<T>(mounts: readonly MountOut[], fn: (dir: string) => Promise<T> | T): Promise<T> {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'tjsm-'));
      const m = mounts[0]!;
      run('mount', ['-t', m.type, ...(m.options.length ? ['-o', m.options.join(',')] : []), m.source, dir]);
      try {
        return await fn(dir);
      } finally {
        run('umount', [dir]);
        rmdirSync(dir);
      }
    },
  };
}

const why = await kernelUnavailable();
if (why) {
  console.log(`kernel snapshotter suite skipped: ${why}`);
  test.skip('kernel snapshotter suite', () => {});
} else {
  // Each case's pools, devices and loop devices go after it, whatever it left.
  test.after.each(async () => {
    for (const home of homes.splice(0)) {
      const prefix = existsSync(home) ? devicePrefixFor(home) : null;
      await removeKernelLeftovers(backend!, path.dirname(home), (name) => prefix !== null && (name.startsWith(prefix + '-') || name === `${prefix}:verify`));
    }
  });
  // Crashes at one roll-back with a kernel effect and one roll-forward; the model runs all four points.
  defineContract(test, async () => harness(), { crashPoints: ['after-step-1', 'after-commit-point'] });
}
test.run();
