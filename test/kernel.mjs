// How *.kernel.test.js files run. They need a real device-mapper, and are never faked:
//  1. /dev/mapper/control exists and we are root → run them here, in one node process;
//  2. otherwise, ../shared/dmvm/run-in-vm.sh exists (this project's machines) → boot the guest once and run
//     them all in one node process inside it;
//  3. otherwise → every kernel file is reported as skipped, with the reason printed.
// THINJOURNAL_KERNEL=0 forces 3 (say so when you use it); THINJOURNAL_KERNEL=guest forces 2.
import { existsSync } from 'node:fs';
import path from 'node:path';

export async function runKernelFiles(files, { root, runChild }) {
  const mode = process.env.THINJOURNAL_KERNEL;
  const direct = existsSync('/dev/mapper/control') && process.getuid?.() === 0;
  const vm = path.resolve(root, '..', 'shared', 'dmvm', 'run-in-vm.sh');
  const skip = (why) => {
    process.stdout.write(`\nkernel tests skipped (${files.length} files): ${why}\n`);
    return files.map((file) => ({ file, passed: 0, failed: 0, skipped: 1, error: null }));
  };
  if (mode === '0') return skip('THINJOURNAL_KERNEL=0 was set');
  if (direct && mode !== 'guest') {
    process.stdout.write(`\nkernel tests: running on this host's device-mapper\n`);
    const { out, results } = await runChild(files);
    process.stdout.write(out.trimEnd() + '\n');
    return results;
  }
  if (!existsSync(vm)) {
    return skip(direct ? 'THINJOURNAL_KERNEL=guest but no dmvm' : 'no /dev/mapper/control (or not root) and no ../shared/dmvm guest');
  }
  process.stdout.write(`\nkernel tests: booting the dmvm guest once for ${files.length} files\n`);
  const cmd = [process.execPath, path.join(root, 'test', 'uvu-child.mjs'), ...files];
  const { out, results } = await runChild(files, { wrap: [vm, ...cmd] });
  process.stdout.write(out.trimEnd() + '\n');
  return results;
}
