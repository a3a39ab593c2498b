// Docker parity on a real kernel: growFS (a snapshot larger than its parent gets its filesystem grown, ext4
// and xfs, crash-safely: SIGKILLed before the grow and mid-grow, finished by the next use or start), the
// grow prediction against the real tools at odd sizes, and `umount` of a device whose mount leaked into
// another mount namespace (`unshare -m`), with deferred removal on and off.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, statfsSync } from 'node:fs';
import { mkdir, rm, truncate, writeFile } from 'node:fs/promises';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';
import { KernelBackend, fsNeedsGrow, fsGrowTarget, type FsGeometry } from '../../../packages/dm/dist/src/index.js';
import { main, EXIT, type Io } from '../../../packages/cli/dist/src/index.js';
import { init } from '../../../packages/driver/dist/src/index.js';
import { cliOn, kernelUnavailable, prepareXfs } from './kernel-harness.js';

const M = 2 ** 20;
const DRIVER = fileURLToPath(new URL('../../../packages/driver/dist/src/index.js', import.meta.url));



/** A real process that opens the driver and SIGKILLs itself at one protocol point of one command. */
function killedAt(home: string, options: string[], point: string, when: string, action: string): Promise<NodeJS.Signals | null> {
  const script = `
    const { init } = await import(${JSON.stringify(DRIVER)});
    const d = await init(${JSON.stringify(home)}, ${JSON.stringify(options)}, {}, { workers: false, onPoint: (p, c) => {
      if (${when} && p === ${JSON.stringify(point)}) process.kill(process.pid, 'SIGKILL');
    } });
    ${action};
    console.log('not killed');`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', reject);
    child.on('exit', (_code, signal) => resolve(signal));
  });
}

async function sb(b: KernelBackend, dmName: string): Promise<FsGeometry> {
  return b.fsGeometry(b.devicePath(dmName));
}

/** statfs of the mounted filesystem: its total size in bytes (what `df` shows). */
function dfBytes(mp: string): number {
  const s = statfsSync(mp);
  return s.blocks * s.bsize;
}

async function cleanupHome(b: KernelBackend, home: string): Promise<void> {
  const r = await cliOn(b, home).run('shutdown');
  if (r.code !== EXIT.OK) console.log(`shutdown ${home}: ${r.err}`);
}

const why = await kernelUnavailable();
if (why) {
  console.log(`kernel parity tests skipped: ${why}`);
  test.skip('kernel parity', () => {});
} else {
  const backend = new KernelBackend();
  const noXfs = await prepareXfs(backend);
  if (noXfs) console.log(`xfs cases skipped: ${noXfs}`);
  const FS: { fs: 'ext4' | 'xfs'; base: number }[] = [{ fs: 'ext4', base: 256 * M }, ...(noXfs ? [] : [{ fs: 'xfs' as const, base: 320 * M }])];

  for (const { fs, base } of FS) {
    test(`${fs}: create --size 2×base grows the filesystem (df ≈ the new size), also after SIGKILL before the grow and mid-grow`, async () => {
      const top = mkdtempSync(path.join(os.tmpdir(), 'tjpk-'));
      const home = path.join(top, 'home');
      const opts = [`dm.loopdatasize=2G`, 'dm.loopmetadatasize=16M', `dm.basesize=${base / M}M`, `dm.fs=${fs}`];
      const { run, ok } = cliOn(backend, home);
      const big = 2 * base;
      try {
        await ok('init', ...opts.flatMap((o) => ['--opt', o]));
        // Docker parity: a snapshot created larger than the base carries a filesystem of its own size.
        const s1 = await ok('create', 's1', '--size', `${big / M}M`);
        assert.is(s1.size, big);
        assert.is(s1.active, false);
        assert.equal(s1.mounts, []);
        assert.not.ok(existsSync(path.join(home, 'grow', 's1')), 'grow mount point removed');
        const same = await ok('create', 'same', '--size', `${base / M}M`);
        const m1 = await ok('mount', 's1');
        const mSame = await ok('mount', 'same');
        const df1 = dfBytes(m1.path);
        const dfSame = dfBytes(mSame.path);
        console.log(`  ${fs}: df of a ${big / M}M snapshot ${Math.round(df1 / M)} MiB, of a ${base / M}M one ${Math.round(dfSame / M)} MiB`);
        // statfs leaves out the filesystem's own overhead (ext4's metadata, xfs's log): ≈ 90 % of the device.
        assert.ok(df1 > 0.85 * big && df1 <= big, `df ${df1} ≈ ${big}`);
        assert.ok(dfSame < 0.55 * big, `the same-size snapshot stays at the base size (${dfSame})`);
        const g1 = await backend.fsGeometry(m1.device);
        assert.not.ok(fsNeedsGrow(g1, big), `nothing left to grow: ${JSON.stringify(g1)}`);
        await ok('umount', 's1');
        await ok('umount', 'same');

        // SIGKILL after the create committed, before the grow: the next mount grows it.
        const sig1 = await killedAt(home, opts, 'after-outcome', `c.type === 'addDevice' && c.hash === 'k1'`, `await d.create('k1', '', '', { size: '${big / M}M' })`);
        assert.is(sig1, 'SIGKILL');
        const k1 = await ok('mount', 'k1');
        const dfK1 = dfBytes(k1.path);
        assert.ok(dfK1 > 0.85 * big, `killed before the grow; the first mount grew it: df ${dfK1}`);
        await ok('umount', 'k1');

        // SIGKILL while mounted at the grow mount point, before resize2fs / xfs_growfs: the next start finishes it.
        const grow = path.join(home, 'grow', 'k2');
        const sig2 = await killedAt(home, opts, 'after-event-2', `c.type === 'mountDevice' && c.path === ${JSON.stringify(grow)}`, `await d.create('k2', '', '', { size: '${big / M}M' })`);
        assert.is(sig2, 'SIGKILL');
        assert.ok(readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${grow} `), 'left mounted at the grow mount point');
        const st = await ok('status', 'k2'); // any command: its start finishes the grow
        assert.is(st.size, big);
        assert.not.ok(readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${grow} `), 'the start unmounted the grow mount point');
        assert.not.ok(existsSync(grow));
        const k2 = await ok('mount', 'k2');
        assert.ok(dfBytes(k2.path) > 0.85 * big, 'the start grew it');
        await ok('umount', 'k2');
        const v = await run('verify', '--kernel');
        assert.is(v.code, EXIT.OK, `verify --kernel: ${v.out} ${v.err}`);
      } finally {
        await cleanupHome(backend, home);
        await rm(top, { recursive: true, force: true });
      }
    });
  }

  test('ext4: the grow prediction matches resize2fs at odd sizes (no grow skipped, none repeated)', async () => {
    const top = mkdtempSync(path.join(os.tmpdir(), 'tjpo-'));
    const home = path.join(top, 'home');
    const base = 64 * M;
    const d = await init(home, ['dm.loopdatasize=1G', 'dm.loopmetadatasize=16M', `dm.basesize=${base / M}M`, 'dm.fs=ext4'], {}, { backend, workers: false });
    const ds = d.deviceSet;
    let grows = 0;
    const realGrow = backend.growFs.bind(backend);
    backend.growFs = async (...a: Parameters<KernelBackend['growFs']>) => { grows++; return realGrow(...a); };
    try {
      const sizes = [base + 4096, base + 300 * 1024, base + 512 * 1024, base + 600 * 1024, base + M, base + 8 * M + 4096, 100 * M];
      for (const [i, size] of sizes.entries()) {
        const id = `o${i}`;
        await ds.addDevice(id, '', { size });
        const mp = path.join(home, 'mnt', id);
        await ds.mountDevice(id, mp);
        const g = await sb(backend, ds.deviceInfo(id)!.dmName!);
        const before = grows;
        await ds.unmountDevice(id, mp);
        await ds.mountDevice(id, mp); // a second first-mount: nothing to grow any more
        console.log(`  ext4 ${size} bytes: ${g.blocks} blocks of ${g.blockSize} (prediction ${fsGrowTarget(g, size)})`);
        assert.not.ok(fsNeedsGrow(g, size), `size ${size}: resize2fs reached ${g.blocks} blocks, the prediction says ${fsGrowTarget(g, size)}`);
        assert.is(grows, before, `size ${size}: no second grow`);
        assert.ok(g.blocks * g.blockSize > base - 2 * g.blockSize, 'not smaller than the base');
        await ds.unmountDevice(id, mp);
      }
      assert.ok(grows >= sizes.length - 1, `grows ran: ${grows}`);
    } finally {
      backend.growFs = realGrow;
      await d.cleanup().catch((err) => console.log(`cleanup: ${(err as Error).message}`));
      await rm(top, { recursive: true, force: true });
    }
  });

  /**
   * `unshare -m --propagation private sleep 1000`: a process in a new mount namespace that holds a copy of
   * every mount. `pinned`: it also has its working directory in the copy of `mp` — removing the directory
   * `mp` here detaches the copies of mounts on it in other namespaces (lazily), and a busy copy keeps the
   * filesystem alive until its last user goes, as a container's process would.
   */
  async function leakMounts(mp: string, pinned = false): Promise<ChildProcess> {
    const argv = pinned ? ['sh', '-c', 'cd "$1" && exec sleep 1000', 'sh', mp] : ['sleep', '1000'];
    const child = spawn('unshare', ['-m', '--propagation', 'private', ...argv], { stdio: 'ignore' });
    for (let i = 0; i < 200; i++) {
      await new Promise((r) => setTimeout(r, 50));
      try {
        if (child.pid && readFileSync(`/proc/${child.pid}/mountinfo`, 'utf8').includes(` ${mp} `) && readFileSync(`/proc/${child.pid}/cmdline`, 'utf8').startsWith('sleep')) return child;
      } catch { /* not there yet */ }
    }
    child.kill('SIGKILL');
    throw new Error('unshare did not start');
  }

  for (const deferred of [true, false]) {
    test(`umount of a device whose mount leaked into another namespace (unshare -m), deferred removal ${deferred ? 'on: deferred, exit 0' : 'off: ERR_DEVICE_BUSY'}`, async () => {
      const top = mkdtempSync(path.join(os.tmpdir(), 'tjpu-'));
      const home = path.join(top, 'home');
      const { run, ok } = cliOn(backend, home);
      let ns: ChildProcess | null = null;
      try {
        await ok('init', '--opt', 'dm.loopdatasize=256M', '--opt', 'dm.loopmetadatasize=16M', '--opt', 'dm.basesize=64M', '--opt', 'dm.fs=ext4', '--opt', `dm.use_deferred_removal=${deferred}`);
        await ok('create', 'p1');
        const m = await ok('mount', 'p1');
        const name = path.basename(m.device);
        ns = await leakMounts(m.path, deferred);
        const r = await run('umount', 'p1', '--json');
        assert.not.ok(readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${m.path} `), 'unmounted here');
        if (deferred) {
          assert.is(r.code, EXIT.OK, r.err);
          const j = JSON.parse(r.out);
          assert.ok(j.removalDeferred, JSON.stringify(j));
          const info = await backend.info(name);
          assert.ok(info?.deferredRemove, `the kernel has ${name} marked for deferred removal: ${JSON.stringify(info)}`);
          await new Promise((res) => setTimeout(res, 500));
          assert.ok((await backend.info(name))?.deferredRemove, 'still there while the namespace holds it');
          ns.kill('SIGKILL');
          await new Promise((res) => ns!.once('exit', res));
          ns = null;
          for (let i = 0; i < 100 && (await backend.info(name)); i++) await new Promise((res) => setTimeout(res, 50));
          assert.is(await backend.info(name), null, 'removed by the kernel once the namespace is gone');
          // The plain `unshare -m … sleep`: the CLI's removal of the mount point directory detaches the
          // namespace's copy, and the deferred removal completes at once — the command succeeds all the same.
          await ok('create', 'p2');
          const m2 = await ok('mount', 'p2');
          const name2 = path.basename(m2.device);
          ns = await leakMounts(m2.path, false);
          const r2 = await run('umount', 'p2', '--json');
          assert.is(r2.code, EXIT.OK, r2.err);
          assert.ok(JSON.parse(r2.out).removalDeferred, r2.out);
          for (let i = 0; i < 100 && (await backend.info(name2)); i++) await new Promise((res) => setTimeout(res, 50));
          assert.is(await backend.info(name2), null, 'gone: its last holder went with the directory');
          ns.kill('SIGKILL');
          await new Promise((res) => ns!.once('exit', res));
          ns = null;
          await ok('status'); // a command that opens the driver records the completed removal
          const p1 = (await ok('ls')).find((x: { hash: string }) => x.hash === 'p1');
          assert.is(p1.active, false, 'the journal says inactive');
        } else {
          assert.is(r.code, 1, `exit 1: ${r.out} ${r.err}`);
          assert.match(r.err, /ERR_DEVICE_BUSY/);
          assert.match(r.err, /still open/);
          assert.not.match(r.err, /DM_DEV_REMOVE/);
          assert.ok(await backend.info(name), 'still active');
          ns.kill('SIGKILL');
          await new Promise((res) => ns!.once('exit', res));
          ns = null;
          await ok('rm', 'p1'); // nothing holds it now: deactivated and deleted
          assert.is(await backend.info(name), null);
        }
        const v = await run('verify', '--kernel');
        assert.is(v.code, EXIT.OK, `verify --kernel: ${v.out} ${v.err}`);
      } finally {
        if (ns) ns.kill('SIGKILL');
        await cleanupHome(backend, home);
        await rm(top, { recursive: true, force: true });
      }
    });
  }
}

test.run();
