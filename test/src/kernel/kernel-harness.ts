/**
 * The conformance harness on a real kernel: files in a fresh temporary directory, read-only files on a
 * tmpfs remounted read-only, holds as open file descriptors, crash images as copies of backing files.
 * cleanup() unmounts, removes this case's dm devices (prefix match) and detaches its loop devices.
 */
import { mkdtemp, open, readFile, readdir, rm, mkdir, truncate, writeFile, copyFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { KernelBackend, errnoOf, parseMountInfo, probeDeviceMapper } from '../../../packages/dm/dist/src/index.js';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import * as assert from 'uvu/assert';
import { main, EXIT, type Io } from '../../../packages/cli/dist/src/index.js';
import type { Harness } from '../conformance/harness.js';

let shared: KernelBackend | null = null;
let caseNo = 0;

export class KernelHarness implements Harness {
  readonly backend: KernelBackend;
  private n = 0;
  private constructor(readonly dir: string, private readonly prefix: string) {
    this.backend = shared ??= new KernelBackend();
  }
  static async create(): Promise<KernelHarness> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tjk-'));
    return new KernelHarness(dir, `tjk${process.pid}-${caseNo++}`);
  }
  name(suffix: string): string {
    return `${this.prefix}-${suffix}`;
  }
  async makeFile(bytes: number, opts: { readOnlyFs?: boolean } = {}): Promise<string> {
    if (!opts.readOnlyFs) {
      const p = path.join(this.dir, `f${this.n++}`);
      await writeFile(p, '');
      await truncate(p, bytes);
      return p;
    }
    const n = this.backend.native;
    const mnt = path.join(this.dir, `ro${this.n++}`);
    await mkdir(mnt);
    await n.mount('tmpfs', mnt, 'tmpfs', 0, `size=${bytes + (1 << 20)}`);
    const p = path.join(mnt, 'file');
    await writeFile(p, Buffer.alloc(bytes));
    await n.mount('tmpfs', mnt, 'tmpfs', n.sysConstants.MS_REMOUNT | n.sysConstants.MS_RDONLY);
    return p;
  }
  async growFile(file: string, bytes: number): Promise<void> {
    await truncate(file, bytes);
  }
  async makeDir(): Promise<string> {
    const p = path.join(this.dir, `d${this.n++}`);
    await mkdir(p);
    return p;
  }
  missingPath(): string {
    return path.join(this.dir, `missing${this.n++}`);
  }
  async hold(devicePath: string): Promise<() => Promise<void>> {
    const fh = await open(devicePath, 'r');
    return async () => fh.close();
  }
  async crashImage(file: string): Promise<string> {
    const p = path.join(this.dir, `image${this.n++}`);
    await copyFile(file, p);
    return p;
  }
  async cleanup(): Promise<void> {
    await removeKernelLeftovers(this.backend, this.dir, (name) => name.startsWith(this.prefix + '-'));
  }
}

/**
 * Everything a test left in the kernel under `dir`: mounts below it (deepest first), the dm devices `mine`
 * names, loop devices backed by files below it; then `dir` itself.
 */
export async function removeKernelLeftovers(b: KernelBackend, dir: string, mine: (dmName: string) => boolean): Promise<void> {
  const mounts = parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'))
    .filter((m) => m.mountPoint.startsWith(dir + '/'))
    .sort((a, b2) => b2.mountPoint.length - a.mountPoint.length);
  for (const m of mounts) await b.umount(m.mountPoint, { detach: true }).catch(() => {});
  // Devices stack (thin on pool): remove what can go, repeat while that makes progress.
  for (let pass = 0; pass < 6; pass++) {
    const left = (await b.listDevices()).filter((d) => mine(d.name));
    if (left.length === 0) break;
    for (const d of left) {
      await b.resume(d.name).catch(() => {});
      await b.remove(d.name).catch((err) => {
        if (errnoOf(err) !== 'EBUSY' && errnoOf(err) !== 'ENXIO') throw err;
      });
    }
  }
  for (const ent of await readdir('/sys/block')) {
    if (!ent.startsWith('loop')) continue;
    const backing = await readFile(`/sys/block/${ent}/loop/backing_file`, 'utf8').catch(() => '');
    if (backing.startsWith(dir + '/')) await b.detachLoop(`/dev/${ent}`).catch(() => {});
  }
  await rm(dir, { recursive: true, force: true });
}

/** Why the kernel suite cannot run here, or null when it can. */
export async function kernelUnavailable(): Promise<string | null> {
  if (process.getuid?.() !== 0) return 'not root';
  const probe = probeDeviceMapper();
  return probe.available ? null : probe.reason;
}

/**
 * The xfs module is listed in /proc/filesystems only once loaded. In the dmvm guest `modprobe` finds no
 * modules, but the kernel autoloads xfs at the first xfs mount: mount one scratch XFS once, as a machine that
 * has used XFS before would have it loaded. Returns why XFS cannot be tested, or null.
 */
export async function prepareXfs(b: KernelBackend): Promise<string | null> {
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

/**
 * The CLI in this process on `backend`, for `home`: `run` gives the exit code and the output, `ok` runs with
 * --json, asserts exit 0 and parses the last line.
 */
export function cliOn(backend: KernelBackend, home: string) {
  const run = async (...args: string[]): Promise<{ code: number; out: string; err: string }> => {
    let out = '', err = '';
    const io: Io = { stdout: { write: (s: string) => (out += s), isTTY: false }, stderr: { write: (s: string) => (err += s), isTTY: false }, env: {}, backend };
    const code = await main([...args, '--home', home], io);
    return { code, out, err };
  };
  const ok = async (...args: string[]): Promise<any> => {
    const r = await run(...args, '--json');
    assert.is(r.code, EXIT.OK, `${args.join(' ')}: exit ${r.code}: ${r.err}${r.out}`);
    return JSON.parse(r.out.trim().split('\n').pop()!);
  };
  return { run, ok };
}
