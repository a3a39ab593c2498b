// How *.kernel.test.js files run. They need a real device-mapper, and are never faked:
//  1. probeDeviceMapper (packages/dm) says this host's device-mapper answers and we are root → run them here,
//     in one node process;
//  2. otherwise, ../shared/dmvm/run-in-vm.sh exists (this project's machines) → boot the guest once and run
//     them all in one node process inside it;
//  3. otherwise → every kernel file is reported as skipped, with the reason printed.
// THINJOURNAL_KERNEL=0 forces 3 (say so when you use it); THINJOURNAL_KERNEL=guest forces 2.
//
// "Answers" means the probe opened the control node and DM_VERSION succeeded. A /dev/mapper/control file
// proves nothing: packages (dmsetup, containerd), containers and WSL create the node on kernels without
// device-mapper, where opening it gives ENODEV; deciding by the file would run every kernel file here, each
// would skip itself, and no kernel test would run at all. The probe is the one dm exports (the driver, the
// CLI and the demo use it too); where packages/dm or the native addon is not built, the probe's answer is
// "unavailable" with that reason, and the guest is used.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

/**
 * Where the kernel files run. Pure: `mode` is THINJOURNAL_KERNEL, `probe` probeDeviceMapper's answer,
 * `isRoot` whether we are uid 0, `guest` whether the dmvm script exists.
 * → { how: 'direct' | 'guest' | 'skip', why: string }
 */
export function chooseKernelRun({ mode, probe, isRoot, guest }) {
  if (mode === '0') return { how: 'skip', why: 'THINJOURNAL_KERNEL=0 was set' };
  if (mode === 'guest') {
    return guest ? { how: 'guest', why: 'THINJOURNAL_KERNEL=guest was set' } : { how: 'skip', why: 'THINJOURNAL_KERNEL=guest but no ../shared/dmvm guest' };
  }
  if (probe.available && isRoot) return { how: 'direct', why: probe.reason };
  const hostCannot = probe.available ? `not root (${probe.reason})` : probe.reason;
  if (guest) return { how: 'guest', why: `this host cannot run them: ${hostCannot}` };
  return { how: 'skip', why: `${hostCannot}, and there is no ../shared/dmvm guest` };
}

/** probeDeviceMapper() from the built packages/dm; "unavailable" with the reason when that is not built. */
export async function probeHost(root) {
  const dist = path.join(root, 'packages', 'dm', 'dist', 'src', 'index.js');
  let dm;
  try {
    dm = await import(pathToFileURL(dist).href);
  } catch (err) {
    return { available: false, reason: `packages/dm is not built (run tsc -b): ${err && err.message ? err.message : String(err)}`, controlPath: '/dev/mapper/control' };
  }
  return dm.probeDeviceMapper();
}

/**
 * Runs the kernel files as chooseKernelRun says. `root` is the repository; `probe`, `env` (for
 * THINJOURNAL_KERNEL), `isRoot` and `write` (where the runner's lines go) are this process's unless given
 * (the runner's own tests give them).
 */
export async function runKernelFiles(files, { root, runChild, probe, env = process.env, isRoot = process.getuid?.() === 0, write = (s) => process.stdout.write(s), fileTimeoutMs = 15 * 60_000 }) {
  const vm = path.resolve(root, '..', 'shared', 'dmvm', 'run-in-vm.sh');
  const choice = chooseKernelRun({ mode: env.THINJOURNAL_KERNEL, probe: probe ?? (await probeHost(root)), isRoot, guest: existsSync(vm) });
  if (choice.how === 'skip') {
    write(`\nkernel tests skipped (${files.length} files): ${choice.why}\n`);
    return files.map((file) => ({ file, passed: 0, failed: 0, skipped: 1, error: null }));
  }
  if (choice.how === 'direct') {
    write(`\nkernel tests: running on this host's device-mapper (${choice.why})\n`);
    const { out, results } = await runChild(files);
    write(out.trimEnd() + '\n');
    return results;
  }
  write(`\nkernel tests: booting the dmvm guest once for ${files.length} files (${choice.why})\n`);
  const cmd = [process.execPath, path.join(root, 'test', 'uvu-child.mjs'), ...files];
  // One guest runs every file in one process: its limit is each file's, summed (the guest's own limit,
  // DMVM_TIMEOUT, is raised to match unless set); containerd and its testsuite want 2 GiB of guest RAM.
  const timeoutMs = fileTimeoutMs * files.length;
  const guestEnv = { DMVM_TIMEOUT: env.DMVM_TIMEOUT ?? String(Math.ceil(timeoutMs / 1000) + 300), DMVM_MEM: env.DMVM_MEM ?? '2048' };
  const { out, results } = await runChild(files, { wrap: [vm, ...cmd], timeoutMs, env: guestEnv });
  write(out.trimEnd() + '\n');
  return results;
}
