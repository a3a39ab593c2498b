// Docker parity on ModelBackend: growFS when a snapshot is larger than its parent (and a grow a crash cut
// short, finished by the next start or the next mount), and unmount of a device whose mount leaked into
// another mount namespace (deferred removal). The same behaviour on the kernel: test/src/kernel/parity.kernel.test.ts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ModelBackend } from '@thinjournal/dm';
import { init, DeviceSet, type Driver } from '../src/index.js';

const M = 2 ** 20;
const BASE = ['dm.loopdatasize=512M', 'dm.loopmetadatasize=16M', 'dm.basesize=64M', 'dm.fs=ext4'];

function tmpHome(): string {
  return path.join(mkdtempSync(path.join(os.tmpdir(), 'tjp-')), 'home');
}

/** The filesystem's size on the device of `hash`, activating it read-only outside the journal for the read. */
async function fsBytesOf(b: ModelBackend, ds: DeviceSet, hash: string): Promise<number> {
  const d = ds.deviceInfo(hash)!;
  if (d.active) {
    const g = await b.fsGeometry(b.devicePath(d.dmName!));
    return g.blocks * g.blockSize;
  }
  const name = `${ds.devicePrefix}:peek`;
  await b.activateThin(name, { poolDevice: b.devicePath(ds.poolName), id: d.deviceId, lengthSectors: d.size / 512 }, { readOnly: true });
  try {
    const g = await b.fsGeometry(b.devicePath(name));
    return g.blocks * g.blockSize;
  } finally {
    await b.remove(name);
  }
}

/** A process that stops for good at `stop` (the Engine's protocol-point hook), then "dies": its journal handle closes. */
async function dieAt(home: string, backend: ModelBackend, options: string[], stop: (p: string, c: { type: string; path?: string; hash?: string }) => boolean, run: (d: Driver) => Promise<unknown>): Promise<void> {
  let stopped!: () => void;
  let missed!: (err: Error) => void;
  const reached = new Promise<void>((resolve, reject) => { stopped = resolve; missed = reject; });
  const d = await init(home, options, {}, {
    backend, workers: false,
    onPoint: (p, c) => (stop(p, c as never) ? (stopped(), new Promise<void>(() => {})) : undefined),
  });
  void run(d).then(() => missed(new Error('the operation finished without reaching the stop point')), (err) => missed(err as Error));
  await reached;
  await d.deviceSet.journalHandle.close();
}

test('addDevice larger than its parent grows the filesystem to the device (Docker growFS), then leaves it inactive', async () => {
  const b = new ModelBackend();
  const home = tmpHome();
  const d = await init(home, BASE, {}, { backend: b, workers: false });
  const ds = d.deviceSet;
  await d.create('s1', '', '', { size: '128M' });
  assert.is(ds.deviceInfo('s1')!.size, 128 * M);
  assert.is(await fsBytesOf(b, ds, 's1'), 128 * M, 'the filesystem fills the 128M device');
  assert.is(b.growCalls.length, 1);
  const s1 = ds.deviceInfo('s1')!;
  assert.is(s1.active, false, 'deactivated again');
  assert.equal(s1.mounts, []);
  assert.not.ok(existsSync(path.join(home, 'grow', 's1')), 'the grow mount point is gone');
  // The grow is journaled as a mount at <home>/grow/s1 and its unmount.
  const recs = (await ds.journalHandle.read()).filter((r) => (r.body as { hash?: string }).hash === 's1').map((r) => `${r.type}${(r.body as { path?: string }).path ? ` ${(r.body as { path: string }).path.slice(home.length)}` : ''}`);
  assert.ok(recs.includes('DeviceMounted /grow/s1') && recs.includes('DeviceUnmounted /grow/s1'), recs.join(', '));
  // Same size as the parent: nothing to grow (Docker grows only when larger); a snapshot of s1 at its size neither.
  await d.create('s2', '');
  await d.create('s3', 's1');
  assert.is(b.growCalls.length, 1);
  assert.is(await fsBytesOf(b, ds, 's3'), 128 * M);
  // Mounting a grown device does not grow it again (the superblock says there is nothing to grow).
  await d.get('s1');
  await d.put('s1');
  assert.is(b.growCalls.length, 1);
  await d.cleanup();
});

test('SIGKILL after the snapshot is created, before its filesystem grows: the next mount grows it (process death and power loss)', async () => {
  for (const powerLoss of [false, true]) {
    const b = new ModelBackend();
    const home = tmpHome();
    const d0 = await init(home, BASE, {}, { backend: b, workers: false });
    await d0.close();
    await dieAt(home, b, BASE, (p, c) => c.type === 'addDevice' && c.hash === 's1' && p === 'after-outcome', (d) => d.create('s1', '', '', { size: '256M' }));
    if (powerLoss) b.crash();
    const d = await init(home, BASE, {}, { backend: b, workers: false });
    const ds = d.deviceSet;
    assert.ok(d.exists('s1'), 'the create committed');
    assert.is(ds.deviceInfo('s1')!.size, 256 * M);
    assert.is(await fsBytesOf(b, ds, 's1'), 64 * M, 'killed before the grow: the parent\'s filesystem');
    const rootfs = await d.get('s1');
    assert.is(await fsBytesOf(b, ds, 's1'), 256 * M, 'the first mount grew it');
    assert.ok(await b.mounted(path.dirname(rootfs)));
    assert.is(ds.deviceInfo('s1')!.mounts.length, 1, 'mounted at its mount point only');
    assert.not.ok(existsSync(path.join(home, 'grow', 's1')));
    await d.put('s1');
    // Again: nothing left to grow.
    const n = b.growCalls.length;
    await d.get('s1');
    await d.put('s1');
    assert.is(b.growCalls.length, n);
    await d.cleanup();
  }
});

test('SIGKILL while mounted at the grow mount point, before the grow: the next start finishes it (process death and power loss)', async () => {
  for (const powerLoss of [false, true]) {
    const b = new ModelBackend();
    const home = tmpHome();
    const d0 = await init(home, BASE, {}, { backend: b, workers: false });
    await d0.close();
    const grow = path.join(home, 'grow', 's1');
    await dieAt(home, b, BASE, (p, c) => c.type === 'mountDevice' && c.path === grow && p === 'after-event-2', (d) => d.create('s1', '', '', { size: '256M' }));
    assert.ok(await b.mounted(grow), 'stopped while mounted for the grow');
    if (powerLoss) b.crash();
    const d = await init(home, BASE, {}, { backend: b, workers: false });
    const ds = d.deviceSet;
    const s1 = ds.deviceInfo('s1')!;
    assert.equal(s1.mounts, [], 'the start unmounted it from the grow mount point');
    assert.is(s1.active, false);
    assert.is(await b.mounted(grow), null);
    assert.not.ok(existsSync(grow));
    assert.is(await fsBytesOf(b, ds, 's1'), 256 * M, 'the start grew it');
    await d.close();
    // the journal and the kernel agree after all this
    const again = await init(home, BASE, {}, { backend: b, workers: false });
    assert.is(again.deviceSet.recovery!.plan.verdict, 'in-sync');
    await again.cleanup();
  }
});

test('a filesystem that cannot be grown: the mount is undone and the tool error returned; a later mount grows it', async () => {
  const b = new ModelBackend();
  const home = tmpHome();
  const d0 = await init(home, BASE, {}, { backend: b, workers: false });
  await d0.close();
  await dieAt(home, b, BASE, (p, c) => c.type === 'addDevice' && p === 'after-outcome', (d) => d.create('s1', '', '', { size: '128M' }));
  const d = await init(home, BASE, {}, { backend: b, workers: false });
  const ds = d.deviceSet;
  const grow = b.growFs.bind(b);
  b.growFs = async () => { throw Object.assign(new Error('resize2fs: no such tool'), { code: 'ERR_FS_TOOL' }); };
  try {
    await d.get('s1');
    assert.unreachable('the mount should fail');
  } catch (err) {
    assert.is((err as { code?: string }).code, 'ERR_FS_TOOL');
  }
  const s1 = ds.deviceInfo('s1')!;
  assert.equal(s1.mounts, []);
  assert.is(s1.active, false, 'the activation the failed mount made is undone');
  b.growFs = grow;
  await d.get('s1');
  assert.is(await fsBytesOf(b, ds, 's1'), 128 * M);
  await d.put('s1');
  await d.cleanup();
});

for (const deferred of [true, false]) {
  test(`unmount of a device whose mount leaked into another mount namespace, deferred removal ${deferred ? 'on: deferred, success' : 'off: ERR_DEVICE_BUSY, still active'}`, async () => {
    const b = new ModelBackend();
    const home = tmpHome();
    const d = await init(home, [...BASE, `dm.use_deferred_removal=${deferred}`], {}, { backend: b, workers: false });
    const ds = d.deviceSet;
    await d.create('p1', '');
    const mp = path.join(home, 'mnt', 'p1');
    await ds.mountDevice('p1', mp);
    const name = ds.deviceInfo('p1')!.dmName!;
    const endNamespace = b.leakMount(mp); // unshare -m: a process in a new namespace holds a copy of the mount
    if (deferred) {
      await ds.unmountDevice('p1', mp);
      const p1 = ds.deviceInfo('p1')!;
      assert.equal(p1.mounts, []);
      assert.ok(p1.removalDeferred, 'removal deferred');
      assert.ok((await b.info(name))?.deferredRemove, 'the kernel has it marked for deferred removal');
      endNamespace();
      assert.is(await b.info(name), null, 'the kernel removed it at its last close');
      await ds.cleanupDeferred();
      assert.is(ds.deviceInfo('p1')!.active, false, 'the worker recorded the completed removal');
    } else {
      try {
        await ds.unmountDevice('p1', mp);
        assert.unreachable('expected ERR_DEVICE_BUSY');
      } catch (err) {
        assert.is((err as { code?: string }).code, 'ERR_DEVICE_BUSY');
        assert.match((err as Error).message, /still open \(1 holder/);
      }
      const p1 = ds.deviceInfo('p1')!;
      assert.equal(p1.mounts, [], 'the unmount stands');
      assert.ok(p1.active && !p1.removalDeferred, 'still active, as the kernel has it');
      assert.ok(await b.info(name));
      endNamespace();
    }
    await d.cleanup();
  });
}

test('put of a layer whose mount leaked, deferred removal off: ERR_DEVICE_BUSY, and the reference is gone with the mount', async () => {
  const b = new ModelBackend();
  const d = await init(tmpHome(), [...BASE, 'dm.use_deferred_removal=false'], {}, { backend: b, workers: false });
  await d.create('p2', '');
  const rootfs = await d.get('p2');
  const endNamespace = b.leakMount(path.dirname(rootfs));
  try {
    await d.put('p2');
    assert.unreachable('expected ERR_DEVICE_BUSY');
  } catch (err) {
    assert.is((err as { code?: string }).code, 'ERR_DEVICE_BUSY');
  }
  assert.is(d.references('p2'), 0);
  assert.equal(d.deviceSet.deviceInfo('p2')!.mounts, []);
  endNamespace();
  await d.remove('p2'); // nothing holds it now: deactivated and deleted
  assert.not.ok(d.exists('p2'));
  await d.cleanup();
});

test.run();
