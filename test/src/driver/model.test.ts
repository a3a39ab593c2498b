// The driver suite on ModelBackend (runs everywhere), plus what only the model can do: a machine crash.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ModelBackend } from '../../../packages/dm/dist/src/index.js';
import { init, probeFsType, mounted } from '../../../packages/driver/dist/src/index.js';
import { defineDriverSuite, type DriverHarness } from './cases.js';

export const OPTIONS = ['dm.loopdatasize=256M', 'dm.loopmetadatasize=16M', 'dm.basesize=64M', 'dm.fs=ext4'];

function harness(backend = new ModelBackend()): DriverHarness {
  return {
    kind: 'model',
    backend,
    options: OPTIONS,
    noXfs: null,
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
  const home = path.join(mkdtempSync(path.join(os.tmpdir(), 'tjd-')), 'home');
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
  assert.is(await d2.get('app'), rootfs);
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

test.run();
