// The driver suite on ModelBackend (runs everywhere), plus what only the model can do: a machine crash.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ModelBackend, poolTableSpec } from '../../../packages/dm/dist/src/index.js';
import { init, probeFsType, mounted, layoutOf, devicePrefixFor } from '../../../packages/driver/dist/src/index.js';
import { ensureDir, ensureSparseFile } from '../../../packages/driver/dist/src/layout.js';
import { defineDriverSuite, tmpHome, type DriverHarness } from './cases.js';

export const OPTIONS = ['dm.loopdatasize=256M', 'dm.loopmetadatasize=16M', 'dm.basesize=64M', 'dm.fs=ext4'];

function harness(backend = new ModelBackend()): DriverHarness {
  return {
    kind: 'model',
    backend,
    options: OPTIONS,
    noXfs: null,
    async occupyLoops(n) {
      const loops: string[] = [];
      for (let i = 0; i < n; i++) {
        const f = `/model/scratch/${Math.random().toString(36).slice(2)}`;
        backend.addFile(f, 2 ** 20);
        loops.push(await backend.attachLoop(f));
      }
      return async () => { for (const l of loops) await backend.detachLoop(l); };
    },
    async hold(devicePath) {
      const release = backend.hold(devicePath);
      return async () => release();
    },
    async xfsNospaceMaxRetries(devicePath) {
      return backend.xfsNospaceMaxRetries.get(devicePath) ?? null;
    },
    async cleanup() {},
  };
}

defineDriverSuite(test, async () => harness());

test('model: a machine crash while a layer is mounted — restart recovers the pool and the mount', async () => {
  const backend = new ModelBackend();
  const home = tmpHome();
  const d = await init(home, OPTIONS, {}, { backend, workers: false });
  await d.create('app', '');
  const rootfs = await d.get('app');
  const mp = path.dirname(rootfs);
  const data = (await d.deviceSet.status()).dataFile;
  // The process dies (its journal handle goes with it) and the machine loses kernel state.
  await d.deviceSet.journalHandle.close();
  backend.crash();
  assert.is(await backend.info(d.deviceSet.poolName), null);
  const d2 = await init(home, OPTIONS, {}, { backend, workers: false });
  assert.ok(d2.exists('app'));
  assert.ok(await backend.mounted(mp), 'recovery re-mounted the layer');
  const types = (await d2.deviceSet.journalHandle.read()).map((r) => r.type);
  assert.ok(await backend.info(d2.deviceSet.poolName), 'pool re-created');
  // The loop files came back on loop devices; if the numbers changed the journal says so.
  const now = (await d2.deviceSet.status()).dataFile;
  if (now !== data) assert.ok(types.includes('PoolDevicesAttached'));
  // the layer recovery re-mounted holds one reference (Docker's RefCounter counts a mount it finds)
  assert.is(d2.references('app'), 1);
  assert.is(await d2.get('app'), rootfs);
  await d2.put('app');
  assert.ok(await backend.mounted(mp), 'one reference left');
  await d2.put('app');
  assert.not.ok(await backend.mounted(mp));
  await d2.cleanup();
});

test('probeFsType and mounted (the seed\'s free functions) read the host: superblock magic, mountinfo', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tjd-probe-'));
  const ext4 = Buffer.alloc(4096);
  ext4.writeUInt16LE(0xef53, 1024 + 56);
  const xfs = Buffer.alloc(4096);
  xfs.write('XFSB', 0, 'latin1');
  writeFileSync(path.join(dir, 'ext4.img'), ext4);
  writeFileSync(path.join(dir, 'xfs.img'), xfs);
  writeFileSync(path.join(dir, 'junk.img'), Buffer.alloc(4096, 7));
  assert.is(await probeFsType(path.join(dir, 'ext4.img')), 'ext4');
  assert.is(await probeFsType(path.join(dir, 'xfs.img')), 'xfs');
  try {
    await probeFsType(path.join(dir, 'junk.img'));
    assert.unreachable('junk probed');
  } catch (err) {
    assert.is((err as { code?: string }).code, 'ERR_FS_UNKNOWN');
  }
  assert.is(await mounted('/'), true);
  assert.is(await mounted(dir), false);
});

const M = 2 ** 20, G = 2 ** 30;
const small = ['dm.basesize=64M', 'dm.fs=ext4'];
async function initError(home: string, options: string[], backend: ModelBackend): Promise<{ code?: string; message: string }> {
  try {
    const d = await init(home, options, {}, { backend, workers: false });
    await d.cleanup();
  } catch (err) {
    return err as { code?: string; message: string };
  }
  assert.unreachable('init succeeded');
  throw new Error('unreachable');
}

test('model: dm.datadev + dm.metadatadev — a pool on block devices; restart; a foreign pool on the metadata device is refused', async () => {
  const backend = new ModelBackend();
  backend.addDisk('/dev/vdd', G);
  backend.addDisk('/dev/vdm', 64 * M);
  const opts = ['dm.datadev=/dev/vdd', 'dm.metadatadev=/dev/vdm', ...small];
  const home = tmpHome();
  let d = await init(home, opts, {}, { backend, workers: false });
  const s = await d.deviceSet.status();
  assert.is(s.dataFile, '/dev/vdd');
  assert.is(s.metadataFile, '/dev/vdm');
  assert.is(s.dataLoopback, '');
  assert.is(s.data.total, G);
  assert.is(d.deviceSet.dataDevicePath(), '/dev/vdd');
  assert.is(d.deviceSet.metadataDevicePath(), '/dev/vdm');
  await d.create('b1', '');
  await d.cleanup(); // removes our pool (not the disks)
  d = await init(home, opts, {}, { backend, workers: false });
  assert.ok(d.exists('b1'));
  assert.ok(d.deviceSet.recovery!.plan.steps.some((st) => st.kind === 'createPool'), 'the pool table was rebuilt');
  await d.cleanup();
  const err = await initError(tmpHome(), opts, backend);
  assert.is(err.code, 'ERR_THINPOOL_INIT');
  assert.match(err.message, /holds a thin pool this journal does not know/);
});

test('model: dm.thinpooldev — an existing empty pool is adopted and kept at shutdown; inactive later: refused; a used pool is not taken over', async () => {
  const backend = new ModelBackend();
  backend.addDisk('/dev/lvm-meta', 64 * M);
  backend.addDisk('/dev/lvm-data', G);
  const spec = { metadataDevice: '/dev/lvm-meta', dataDevice: '/dev/lvm-data', lengthSectors: G / 512, dataBlockSectors: 128, lowWaterMarkBlocks: 100 };
  await backend.createPool('docker-thinpool', spec);
  const opts = ['dm.thinpooldev=/dev/mapper/docker-thinpool', ...small];
  const home = tmpHome();
  let d = await init(home, opts, {}, { backend, workers: false });
  assert.is(d.deviceSet.poolName, 'docker-thinpool');
  assert.is((await d.deviceSet.status()).dataLoopback, '');
  await d.create('t1', '');
  await d.cleanup();
  assert.ok(await backend.info('docker-thinpool'), 'an adopted pool stays up at shutdown');
  d = await init(home, opts, {}, { backend, workers: false });
  assert.ok(d.exists('t1'));
  await d.cleanup();
  await backend.remove('docker-thinpool'); // its owner (LVM) deactivated it
  const inactive = await initError(home, opts, backend);
  assert.is(inactive.code, 'ERR_THINPOOL_INIT');
  assert.match(inactive.message, /is not active; activate it/);
  assert.is(await backend.info('docker-thinpool'), null, 'not re-created behind its owner\'s back');

  backend.addDisk('/dev/used-meta', 64 * M);
  backend.addDisk('/dev/used-data', G);
  await backend.createPool('used-pool', { ...spec, metadataDevice: '/dev/used-meta', dataDevice: '/dev/used-data' });
  await backend.createThin('used-pool', 0);
  await backend.setTransactionId('used-pool', 0, 1);
  const used = await initError(tmpHome(), ['dm.thinpooldev=used-pool', ...small], backend);
  assert.is(used.code, 'ERR_THINPOOL_INIT');
  assert.match(used.message, /Unable to take ownership of thin-pool \(used-pool\)/);
});

test('model: a crash between formatting the pool and journaling it — the next start adopts the empty pool', async () => {
  for (const machine of [false, true]) {
    // What a start killed inside initPool leaves: the loop files, the pool formatted on them (dm-thin wrote
    // its empty metadata), no journal record (PoolInitialised is journaled after the kernel step).
    const backend = new ModelBackend();
    const home = tmpHome();
    const L = layoutOf(home);
    ensureDir(backend, home);
    ensureDir(backend, L.devicemapper);
    ensureSparseFile(backend, L.dataFile, 256 * M);
    ensureSparseFile(backend, L.metadataFile, 16 * M);
    const data = await backend.attachLoop(L.dataFile);
    const meta = await backend.attachLoop(L.metadataFile);
    await backend.zeroRange(meta, 0, 4096);
    await backend.createPool(`${devicePrefixFor(home)}-pool`, poolTableSpec({ dataDevice: data, metadataDevice: meta, dataSize: 256 * M, blockSize: 65536 }));
    if (machine) backend.crash();
    const d = await init(home, OPTIONS, {}, { backend, workers: false });
    assert.is(d.deviceSet.transactionId, 1, `pool adopted, base image created (${machine ? 'machine' : 'process'} crash)`);
    assert.ok(d.exists(''));
    await d.cleanup();
  }
});

test('model: a crash while the base image grows (dm.basesize raised) — the next start finishes the growth', async () => {
  for (const machine of [false, true]) {
    const backend = new ModelBackend();
    const home = tmpHome();
    let d = await init(home, OPTIONS, {}, { backend, workers: false });
    await d.cleanup();
    const bigger = [...OPTIONS.filter((o) => !o.startsWith('dm.basesize')), 'dm.basesize=128M'];
    // the start that grows it stops right after the thin device grew (mounted at the grow point, fs not grown)
    const stop = (p: string, c: { type: string }) => { if (c.type === 'resizeDevice' && p === 'after-event-1') throw new Error('killed'); };
    try {
      await init(home, bigger, {}, { backend, workers: false, onPoint: stop });
      assert.unreachable('not stopped');
    } catch (err) {
      assert.match((err as Error).message, /killed/);
    }
    if (machine) backend.crash();
    d = await init(home, bigger, {}, { backend, workers: false });
    const base = d.deviceSet.deviceInfo('')!;
    assert.is(base.size, 128 * M);
    assert.equal(base.mounts, [], 'the grow mount point is unmounted');
    assert.is(base.active, false);
    const recs = await d.deviceSet.journalHandle.read();
    assert.is(recs.filter((r) => r.type === 'DeviceResized').length, 1, 'grown once');
    assert.is(recs.filter((r) => r.type === 'DeviceUnmounted' && r.reason === 'grow the base filesystem').length, 1);
    await d.create('after-grow', '');
    assert.is(d.getMetadata('after-grow').DeviceSize, String(128 * M));
    await d.cleanup();
  }
});

test('model: the deferred-work timer finishes a deferred deletion by itself once the device is released', async () => {
  const backend = new ModelBackend();
  const home = tmpHome();
  const d = await init(home, [...OPTIONS, 'dm.use_deferred_removal=true', 'dm.use_deferred_deletion=true'], {}, { backend, deferredRetryMs: 20, deferredRetryMaxMs: 80 });
  try {
    await d.create('w', '');
    await d.get('w');
    const release = backend.hold(backend.devicePath(d.deviceSet.deviceInfo('w')!.dmName!));
    await d.put('w');
    await d.remove('w');
    assert.ok(d.deviceSet.deviceInfo('w')!.deletionDeferred);
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(d.deviceSet.deviceInfo('w'), 'kept while open, the timer retrying');
    release();
    const deadline = Date.now() + 5000;
    while (d.deviceSet.deviceInfo('w') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.is(d.deviceSet.deviceInfo('w'), undefined, 'deleted by the worker');
    const types = (await d.deviceSet.journalHandle.read()).filter((r) => r.actor === 'thinjournal-driver' && r.reason === 'deferred deletion retry').map((r) => r.type);
    assert.ok(types.includes('DeviceDeleted'), types.join(' '));
  } finally {
    await d.cleanup();
  }
});

test.run();
