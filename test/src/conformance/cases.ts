/**
 * The conformance suite: the same cases against ModelBackend (model.test.ts, everywhere) and KernelBackend
 * (test/src/kernel/conformance.kernel.test.ts, on a real device-mapper). A case states kernel behaviour;
 * when the model and the kernel disagree, the kernel run is the arbiter and the model gets fixed.
 */
import { execFile } from 'node:child_process';
import { access, constants as fsConstants, symlink, truncate, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Test } from 'uvu';
import * as assert from 'uvu/assert';
import { errnoOf, thinPoolTable, parseThinTable, FS_UUID_RE, ModelBackend, type Backend } from '../../../packages/dm/dist/src/index.js';
import type { Harness, HarnessFactory } from './harness.js';

/** The transaction id and thin ids of pool metadata (its geometry is asserted where it is the point). */
const txAndIds = (m: { transactionId: number; ids: number[] }) => ({ transactionId: m.transactionId, ids: m.ids });

const MiB = 1 << 20;

/** Asserts that `p` rejects with ThinjournalError `code` (and, for ERR_KERNEL, errno `errnoName`). */
export async function rejects(p: Promise<unknown> | (() => Promise<unknown>), code: string, errnoName?: string): Promise<unknown> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    const e = err as { code?: string; name?: string; message?: string };
    assert.is(e.code, code, `expected ${code}${errnoName ? '/' + errnoName : ''}, got ${e.code}: ${e.message}`);
    assert.is(e.name, 'ThinjournalError');
    if (errnoName) assert.is(errnoOf(err), errnoName, `expected errno ${errnoName}, got ${errnoOf(err)}: ${e.message}`);
    return err;
  }
  assert.unreachable(`expected rejection with ${code}${errnoName ? '/' + errnoName : ''}`);
}

/** Asserts that `fn` throws or rejects with a TypeError (programmer misuse, refused before any effect). */
async function rejectsType(fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    assert.instance(err, TypeError, `expected TypeError, got ${(err as Error).name}: ${(err as Error).message}`);
    return;
  }
  assert.unreachable('expected a TypeError');
}

/** `blkid -p -o value -s TAG device`: the external oracle for filesystem UUIDs and labels (kernel only). */
function blkid(device: string, tag: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('blkid', ['-p', '-o', 'value', '-s', tag, device], (err, stdout, stderr) => {
      if (err) reject(new Error(`blkid -p -s ${tag} ${device}: ${err.message} ${stderr}`));
      else resolve(stdout.trim());
    });
  });
}

/** Is `tool` an executable on $PATH? */
async function onPath(tool: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '').split(':').filter(Boolean)) {
    if (await access(path.join(dir, tool), fsConstants.X_OK).then(() => true, () => false)) return true;
  }
  return false;
}

/** Unlinks a file the harness made (the model's removeFile, or unlink(2)). */
async function removeFile(h: Harness, file: string): Promise<void> {
  if (h.backend instanceof ModelBackend) h.backend.removeFile(file);
  else await unlink(file);
}

/** A new, zero-filled file at `file` (which must not exist). */
async function remakeFile(h: Harness, file: string, bytes: number): Promise<void> {
  if (h.backend instanceof ModelBackend) return h.backend.addFile(file, bytes);
  await writeFile(file, '', { flag: 'wx' });
  await truncate(file, bytes);
}

const loopNumber = (dev: string) => Number(/^\/dev\/loop(\d+)$/.exec(dev)?.[1] ?? NaN);

export interface PoolFixture {
  pool: string;
  metaFile: string;
  dataFile: string;
  metaDev: string;
  dataDev: string;
  dataSectors: number;
}

/** A pool on two fresh loop devices: 16 MiB metadata (first 4 KiB zeroed, as fresh metadata must be), 64 MiB data (or `dataBytes`). */
export async function makePool(h: Harness, suffix = 'pool', opts: { lowWaterMarkBlocks?: number; dataBytes?: number } = {}): Promise<PoolFixture> {
  const b = h.backend;
  const metaFile = await h.makeFile(16 * MiB);
  const dataFile = await h.makeFile(opts.dataBytes ?? 64 * MiB);
  const metaDev = await b.attachLoop(metaFile);
  const dataDev = await b.attachLoop(dataFile);
  await b.zeroRange(metaDev, 0, 4096);
  const dataSectors = (await b.blockDeviceSize(dataDev)) / 512;
  const pool = h.name(suffix);
  await b.createPool(pool, { metadataDevice: metaDev, dataDevice: dataDev, lengthSectors: dataSectors, dataBlockSectors: 128, lowWaterMarkBlocks: opts.lowWaterMarkBlocks ?? 16 });
  return { pool, metaFile, dataFile, metaDev, dataDev, dataSectors };
}

async function names(b: Backend, prefix: string): Promise<string[]> {
  return (await b.listDevices()).map((d) => d.name).filter((n) => n.startsWith(prefix)).sort();
}

export function defineConformance(test: Test, makeHarness: HarnessFactory): void {
  const cases: [string, (h: Harness) => Promise<void>][] = [];
  const add = (name: string, fn: (h: Harness) => Promise<void>) => cases.push([name, fn]);

  add('driver version is 4.x', async (h) => {
    const v = await h.backend.version();
    assert.is(v.major, 4);
    assert.ok(v.minor >= 27, 'deferred remove needs 4.27');
  });

  add('a fresh pool reports transaction 0, exact totals, default modes, and its table parses back', async (h) => {
    const b = h.backend;
    const f = await makePool(h);
    const s = await b.poolStatusOk(f.pool);
    assert.is(s.transactionId, 0);
    assert.is(s.totalDataBlocks, f.dataSectors / 128);
    assert.is(s.usedDataBlocks, 0);
    assert.is(s.totalMetadataBlocks, (16 * MiB) / 4096);
    assert.ok(s.usedMetadataBlocks > 0 && s.usedMetadataBlocks < s.totalMetadataBlocks);
    assert.is(s.heldMetadataRoot, null);
    assert.is(s.mode, 'rw');
    assert.is(s.discard, 'discard_passdown');
    assert.is(s.noSpace, 'queue');
    assert.is(s.needsCheck, false);
    assert.is(s.metadataLowWaterMark, Math.min(1024, s.totalMetadataBlocks / 4));
    const t = await b.poolTable(f.pool);
    assert.is(t.dataBlockSectors, 128);
    assert.is(t.lowWaterMarkBlocks, 16);
    assert.is(t.lengthSectors, f.dataSectors);
    assert.ok(/^\d+:\d+$/.test(t.metadataDevice) && /^\d+:\d+$/.test(t.dataDevice) && t.metadataDevice !== t.dataDevice);
    assert.equal(t.features, { skipBlockZeroing: false, ignoreDiscard: false, noDiscardPassdown: false, readOnly: false, errorIfNoSpace: false });
    const info = await b.info(f.pool);
    assert.ok(info && info.activeTable && !info.suspended && !info.inactiveTable && info.openCount === 0);
  });

  add('pool features round-trip through the kernel table', async (h) => {
    const b = h.backend;
    const f = await makePool(h);
    await b.remove(f.pool);
    const pool2 = h.name('feat');
    // existing metadata fixes the data block size: another one is refused
    await rejects(b.create(pool2, [thinPoolTable({ metadataDevice: f.metaDev, dataDevice: f.dataDev, lengthSectors: f.dataSectors, dataBlockSectors: 256, lowWaterMarkBlocks: 8 })]), 'ERR_KERNEL', 'EINVAL');
    await b.create(pool2, [thinPoolTable({ metadataDevice: f.metaDev, dataDevice: f.dataDev, lengthSectors: f.dataSectors, dataBlockSectors: 128, lowWaterMarkBlocks: 8, features: { skipBlockZeroing: true, errorIfNoSpace: true, noDiscardPassdown: true } })]);
    const t = await b.poolTable(pool2);
    assert.equal(t.features, { skipBlockZeroing: true, ignoreDiscard: false, noDiscardPassdown: true, readOnly: false, errorIfNoSpace: true });
    const s = await b.poolStatusOk(pool2);
    assert.is(s.noSpace, 'error');
    assert.is(s.discard, 'no_discard_passdown');
  });

  add('create_thin and set_transaction_id follow the kernel rules, and bad messages change nothing', async (h) => {
    const b = h.backend;
    const { pool } = await makePool(h);
    await b.createThin(pool, 0);
    await rejects(b.createThin(pool, 0), 'ERR_KERNEL', 'EEXIST');
    await b.setTransactionId(pool, 0, 1);
    await rejects(b.setTransactionId(pool, 0, 2), 'ERR_KERNEL', 'EINVAL'); // mismatched transaction id
    assert.is((await b.poolStatusOk(pool)).transactionId, 1);
    await rejects(b.createSnap(pool, 5, 4), 'ERR_KERNEL', 'ENODATA');
    await rejects(b.createSnap(pool, 0, 0), 'ERR_KERNEL', 'EEXIST');
    await rejects(b.deleteThin(pool, 9), 'ERR_KERNEL', 'ENODATA');
    // refused before the kernel: out of the 24-bit id space / not an integer
    await rejects(() => b.createThin(pool, 1 << 24), 'ERR_DM_ARG');
    await rejects(() => b.createThin(pool, 1.5), 'ERR_DM_ARG');
    await rejects(() => b.setTransactionId(pool, -1, 2), 'ERR_DM_ARG');
    // ... and by the kernel when sent raw
    await rejects(b.message(pool, 'create_thin 16777216'), 'ERR_KERNEL', 'EINVAL');
    await rejects(b.message(pool, 'create_thin 1x'), 'ERR_KERNEL', 'EINVAL');
    await rejects(b.message(pool, 'create_thin'), 'ERR_KERNEL', 'EINVAL');
    await rejects(b.message(pool, 'no_such_message 1'), 'ERR_KERNEL', 'EINVAL');
    await rejects(b.message(pool, 'create_thin 3', 1 << 30), 'ERR_KERNEL', 'EINVAL'); // sector beyond the device
    // the transaction id is not ordered: any new value is accepted when the old one matches
    await b.setTransactionId(pool, 1, 0);
    await b.setTransactionId(pool, 0, 7);
    const md = await b.poolMetadata(pool);
    assert.equal(txAndIds(md), { transactionId: 7, ids: [0] });
    assert.is((await b.poolStatusOk(pool)).heldMetadataRoot, null, 'poolMetadata releases its metadata snapshot');
  });

  add('an active thin: status, busy delete, busy pool remove, then clean teardown', async (h) => {
    const b = h.backend;
    const f = await makePool(h);
    await b.createThin(f.pool, 0);
    const thin = h.name('t0');
    const info = await b.activateThin(thin, { poolDevice: b.devicePath(f.pool), id: 0, lengthSectors: 32 * 2048 });
    assert.ok(info.activeTable && !info.suspended);
    assert.equal(await b.thinStatus(thin), { state: 'active', mappedSectors: 0, highestMappedSector: null });
    assert.is((await b.info(f.pool))!.openCount, 1);
    const t = parseThinTable((await b.table(thin))[0]!.params);
    assert.is(t.id, 0);
    assert.is(t.poolDevice, `${(await b.info(f.pool))!.major}:${(await b.info(f.pool))!.minor}`);
    assert.is(await b.blockDeviceSize(b.devicePath(thin)), 32 * MiB);
    await rejects(b.deleteThin(f.pool, 0), 'ERR_KERNEL', 'EBUSY');
    await rejects(b.remove(f.pool), 'ERR_KERNEL', 'EBUSY');
    assert.ok((await b.info(f.pool))!.activeTable, 'a refused remove leaves the pool as it was');
    // the same thin id may be active on two devices at once
    const again = h.name('t0b');
    await b.activateThin(again, { poolDevice: b.devicePath(f.pool), id: 0, lengthSectors: 2048 });
    assert.is((await b.info(f.pool))!.openCount, 2);
    assert.equal(await b.remove(again), { removed: true, deferred: false });
    assert.equal(await b.remove(thin), { removed: true, deferred: false });
    assert.is(await b.info(thin), null);
    await b.deleteThin(f.pool, 0);
    assert.equal((await b.poolMetadata(f.pool)).ids, []);
  });

  add('snapshot of an active origin: suspend, create_snap, resume', async (h) => {
    const b = h.backend;
    const f = await makePool(h);
    await b.createThin(f.pool, 0);
    const origin = h.name('origin');
    await b.activateThin(origin, { poolDevice: b.devicePath(f.pool), id: 0, lengthSectors: 8 * 2048 });
    await b.snapshotActive(f.pool, 1, 0, origin);
    assert.is((await b.info(origin))!.suspended, false);
    await rejects(b.snapshotActive(f.pool, 1, 0, origin), 'ERR_KERNEL', 'EEXIST');
    assert.is((await b.info(origin))!.suspended, false, 'resumed after a failed create_snap too');
    const snap = h.name('snap');
    await b.activateThin(snap, { poolDevice: b.devicePath(f.pool), id: 1, lengthSectors: 8 * 2048 });
    assert.is((await b.thinStatus(snap)).state, 'active');
    assert.equal((await b.poolMetadata(f.pool)).ids, [0, 1]);
    if ('hazards' in b) assert.equal((b as { hazards: string[] }).hazards, []);
  });

  add('a failed create leaves nothing behind', async (h) => {
    const b = h.backend;
    const f = await makePool(h);
    const before = await names(b, h.name(''));
    const thin = h.name('nothin');
    await rejects(b.activateThin(thin, { poolDevice: b.devicePath(f.pool), id: 7, lengthSectors: 2048 }), 'ERR_KERNEL', 'ENODATA');
    assert.is(await b.info(thin), null);
    await rejects(b.activateThin(thin, { poolDevice: h.missingPath(), id: 0, lengthSectors: 2048 }), 'ERR_KERNEL', 'ENODEV');
    const bad = h.name('badpool');
    const meta2 = await b.attachLoop(await h.makeFile(16 * MiB));
    await rejects(b.create(bad, [{ start: 0, length: f.dataSectors, type: 'thin-pool', params: `${meta2} ${f.dataDev} 100 10` }]), 'ERR_KERNEL', 'EINVAL');
    await rejects(b.create(bad, [{ start: 0, length: f.dataSectors * 2, type: 'thin-pool', params: `${meta2} ${f.dataDev} 128 10` }]), 'ERR_KERNEL', 'EINVAL');
    await rejects(b.create(bad, [{ start: 0, length: f.dataSectors, type: 'thin-pool', params: `${meta2} ${f.dataDev} 128 10 1 no_such_feature` }]), 'ERR_KERNEL', 'EINVAL');
    await rejects(b.create(bad, [{ start: 0, length: f.dataSectors, type: 'thin-pool', params: `${meta2} ${meta2} 128 10` }]), 'ERR_KERNEL', 'EINVAL');
    await rejects(b.create(bad, [{ start: 0, length: f.dataSectors, type: 'thin-pool', params: `${h.missingPath()} ${f.dataDev} 128 10` }]), 'ERR_KERNEL', 'ENODEV');
    // a second pool on metadata that a pool already uses
    await rejects(b.create(bad, [{ start: 0, length: f.dataSectors, type: 'thin-pool', params: `${f.metaDev} ${f.dataDev} 128 10` }]), 'ERR_KERNEL', 'EBUSY');
    assert.is(await b.info(bad), null);
    // an existing name: refused, and the existing device is untouched
    await rejects(b.create(f.pool, []), 'ERR_KERNEL', 'EBUSY');
    assert.ok((await b.info(f.pool))!.activeTable);
    assert.equal(await names(b, h.name('')), before);
  });

  add('names over DM limits and invalid tables are refused before the kernel', async (h) => {
    const b = h.backend;
    const f = await makePool(h);
    const before = await names(b, '');
    for (const bad of ['', 'a/b', '..', 'x'.repeat(128), 'é'.repeat(64)]) {
      await rejects(() => b.create(bad, []), 'ERR_DM_NAME');
      await rejects(() => b.info(bad), 'ERR_DM_NAME');
      await rejects(() => b.message(bad, 'create_thin 1'), 'ERR_DM_NAME');
      await rejects(() => b.remove(bad), 'ERR_DM_NAME');
    }
    const longest = h.name('') + 'x'.repeat(127 - h.name('').length);
    assert.is(Buffer.byteLength(longest), 127);
    await b.create(longest, []);
    assert.equal(await b.remove(longest), { removed: true, deferred: false });
    const spec = { metadataDevice: f.metaDev, dataDevice: f.dataDev, lengthSectors: f.dataSectors, dataBlockSectors: 128, lowWaterMarkBlocks: 10 };
    await rejects(() => b.createPool(h.name('x'), { ...spec, dataBlockSectors: 100 }), 'ERR_DM_TABLE');
    await rejects(() => b.createPool(h.name('x'), { ...spec, dataBlockSectors: 64 }), 'ERR_DM_TABLE');
    await rejects(() => b.createPool(h.name('x'), { ...spec, lowWaterMarkBlocks: f.dataSectors / 128 }), 'ERR_DM_TABLE');
    await rejects(() => b.createPool(h.name('x'), { ...spec, dataDevice: f.metaDev }), 'ERR_DM_TABLE');
    await rejects(() => b.activateThin(h.name('x'), { poolDevice: b.devicePath(f.pool), id: -1, lengthSectors: 8 }), 'ERR_DM_TABLE');
    await rejects(() => b.create(h.name('x'), [{ start: 0, length: 8, type: 'a-very-long-type-name', params: '' }]), 'ERR_DM_TABLE');
    assert.equal(await names(b, ''), before);
  });

  add('messages and calls on a missing device are ENXIO', async (h) => {
    const b = h.backend;
    const ghost = h.name('ghost');
    await rejects(b.createThin(ghost, 0), 'ERR_KERNEL', 'ENXIO');
    await rejects(b.message(ghost, 'set_transaction_id 0 1'), 'ERR_KERNEL', 'ENXIO');
    await rejects(b.suspend(ghost), 'ERR_KERNEL', 'ENXIO');
    await rejects(b.resume(ghost), 'ERR_KERNEL', 'ENXIO');
    await rejects(b.remove(ghost), 'ERR_KERNEL', 'ENXIO');
    await rejects(b.status(ghost), 'ERR_KERNEL', 'ENXIO');
    assert.is(await b.info(ghost), null);
  });

  add('a device without a table: a message does nothing (accepted, or EINVAL on newer kernels); resume after suspend is EINVAL', async (h) => {
    const b = h.backend;
    const empty = h.name('empty');
    const info = await b.create(empty, []);
    assert.ok(!info.activeTable && !info.inactiveTable);
    // Debian's 6.1 kernels differ here: earlier point releases accept and ignore the message, 6.1.0-57 refuses
    // it with EINVAL. Either way nothing happens: the device still has no table.
    const answer = await b.message(empty, 'create_thin 1').then((r) => ({ r }), (err: unknown) => ({ err }));
    if ('err' in answer) assert.is(errnoOf(answer.err), 'EINVAL', String(answer.err));
    else assert.is(answer.r, null);
    assert.ok(!(await b.info(empty))!.activeTable);
    await b.resume(empty); // not suspended: nothing to do
    assert.equal(await b.status(empty), []);
    await b.suspend(empty);
    assert.is((await b.info(empty))!.suspended, true);
    await b.suspend(empty); // idempotent
    await rejects(b.resume(empty), 'ERR_KERNEL', 'EINVAL'); // no table to resume with
    assert.is((await b.info(empty))!.suspended, true);
    assert.equal(await b.remove(empty), { removed: true, deferred: false });
  });

  add('load + resume swaps tables; clear drops the inactive one', async (h) => {
    const b = h.backend;
    const f = await makePool(h);
    await b.createThin(f.pool, 0);
    const thin = h.name('t');
    await b.activateThin(thin, { poolDevice: b.devicePath(f.pool), id: 0, lengthSectors: 2048 });
    await b.load(thin, [{ start: 0, length: 4096, type: 'thin', params: `${b.devicePath(f.pool)} 0` }]);
    assert.is((await b.info(thin))!.inactiveTable, true);
    assert.is((await b.table(thin))[0]!.length, 2048, 'the live table serves until resume');
    await b.clear(thin);
    assert.is((await b.info(thin))!.inactiveTable, false);
    await b.load(thin, [{ start: 0, length: 4096, type: 'thin', params: `${b.devicePath(f.pool)} 0` }]);
    await b.suspend(thin);
    await b.resume(thin);
    assert.is((await b.table(thin))[0]!.length, 4096);
    assert.is(await b.blockDeviceSize(b.devicePath(thin)), 4096 * 512);
    await rejects(b.load(thin, [{ start: 0, length: 4096, type: 'thin', params: `${b.devicePath(f.pool)} 99` }]), 'ERR_KERNEL', 'ENODATA');
    assert.is((await b.info(thin))!.inactiveTable, false, 'a failed load leaves no inactive table');
  });

  add('remove of an open device: EBUSY, or deferred until the last close', async (h) => {
    const b = h.backend;
    const f = await makePool(h);
    await b.createThin(f.pool, 0);
    const thin = h.name('held');
    await b.activateThin(thin, { poolDevice: b.devicePath(f.pool), id: 0, lengthSectors: 2048 });
    const release = await h.hold(b.devicePath(thin));
    assert.is((await b.info(thin))!.openCount, 1);
    await rejects(b.remove(thin), 'ERR_KERNEL', 'EBUSY');
    assert.equal(await b.remove(thin, { deferred: true }), { removed: false, deferred: true });
    assert.is((await b.info(thin))!.deferredRemove, true);
    // @cancel_deferred_remove (handled by dm-ioctl itself): the device stays after the last close
    assert.is(await b.message(thin, '@cancel_deferred_remove'), null);
    assert.is((await b.info(thin))!.deferredRemove, false);
    await rejects(b.message(thin, '@no_such_thing'), 'ERR_KERNEL', 'EINVAL');
    await release();
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(await b.info(thin), 'still there: the deferred remove was cancelled');
    const again = await h.hold(b.devicePath(thin));
    assert.equal(await b.remove(thin, { deferred: true }), { removed: false, deferred: true });
    await again();
    // dm_blk_close() only queues the deferred remove (deferred_remove_workqueue): on the kernel the device
    // goes shortly after the last close, not during it. Wait for it, boundedly.
    const deadline = Date.now() + 10_000;
    while ((await b.info(thin)) !== null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.is(await b.info(thin), null);
  });

  add('poolMetadata through a stale metadata snapshot (a reader killed between reserve and release)', async (h) => {
    const b = h.backend;
    const f = await makePool(h);
    await b.createThin(f.pool, 0);
    await b.setTransactionId(f.pool, 0, 3);
    await b.message(f.pool, 'reserve_metadata_snap'); // left held, as by a killed reader
    const held = await b.poolStatusOk(f.pool);
    assert.ok(held.heldMetadataRoot !== null, 'a snapshot is held');
    await rejects(b.message(f.pool, 'reserve_metadata_snap'), 'ERR_KERNEL', 'EBUSY');
    assert.equal(txAndIds(await b.poolMetadata(f.pool)), { transactionId: 3, ids: [0] });
    assert.is((await b.poolStatusOk(f.pool)).heldMetadataRoot, null, 'no reservation left behind');
  });

  add('pool metadata persists across pool re-creation on the same metadata device', async (h) => {
    const b = h.backend;
    const f = await makePool(h);
    await b.createThin(f.pool, 0);
    await b.createSnap(f.pool, 1, 0);
    await b.setTransactionId(f.pool, 0, 5);
    await b.remove(f.pool);
    assert.equal(await b.readMetadata(f.metaDev), { transactionId: 5, ids: [0, 1], dataBlockSectors: 128, dataBlocks: Math.floor(f.dataSectors / 128) });
    await b.createPool(f.pool, { metadataDevice: f.metaDev, dataDevice: f.dataDev, lengthSectors: f.dataSectors, dataBlockSectors: 128, lowWaterMarkBlocks: 16 });
    assert.is((await b.poolStatusOk(f.pool)).transactionId, 5);
    await b.activateThin(h.name('t1'), { poolDevice: b.devicePath(f.pool), id: 1, lengthSectors: 2048 });
    // zeroing the superblock (pool removed first) gives a fresh pool
    await b.remove(h.name('t1'));
    await b.remove(f.pool);
    await b.zeroRange(f.metaDev, 0, 4096);
    await b.createPool(f.pool, { metadataDevice: f.metaDev, dataDevice: f.dataDev, lengthSectors: f.dataSectors, dataBlockSectors: 128, lowWaterMarkBlocks: 16 });
    assert.equal(txAndIds(await b.poolMetadata(f.pool)), { transactionId: 0, ids: [] });
  });

  add('the metadata records the data size: a longer table grows it, a shorter one is refused at resume and leaves no device', async (h) => {
    const b = h.backend;
    const f = await makePool(h, 'pool', { dataBytes: 32 * MiB });
    const blocks = f.dataSectors / 128;
    assert.is((await b.poolMetadata(f.pool)).dataBlocks, blocks);
    // the data file grows behind the pool's back; the loop takes the size; the pool is reloaded longer
    await h.growFile(f.dataFile, 64 * MiB);
    await b.resizeLoop(f.dataDev);
    await b.load(f.pool, [thinPoolTable({ metadataDevice: f.metaDev, dataDevice: f.dataDev, lengthSectors: 2 * f.dataSectors, dataBlockSectors: 128, lowWaterMarkBlocks: 16 })]);
    await b.resume(f.pool);
    assert.is((await b.poolMetadata(f.pool)).dataBlocks, 2 * blocks);
    await b.remove(f.pool);
    assert.equal(await b.readMetadata(f.metaDev), { transactionId: 0, ids: [], dataBlockSectors: 128, dataBlocks: 2 * blocks });
    // rebuilt at the old length: the kernel refuses it (pool target too small), and no device is left
    await rejects(b.createPool(f.pool, { metadataDevice: f.metaDev, dataDevice: f.dataDev, lengthSectors: f.dataSectors, dataBlockSectors: 128, lowWaterMarkBlocks: 16 }), 'ERR_KERNEL', 'EINVAL');
    assert.is(await b.info(f.pool), null);
    assert.is((await b.readMetadata(f.metaDev)).dataBlocks, 2 * blocks, 'the refused table changed nothing');
    // device numbers as tables name them
    const num = await b.deviceNumber(f.dataDev);
    assert.match(num ?? '', /^\d+:\d+$/);
    await b.createPool(f.pool, { metadataDevice: f.metaDev, dataDevice: f.dataDev, lengthSectors: 2 * f.dataSectors, dataBlockSectors: 128, lowWaterMarkBlocks: 16 });
    assert.is((await b.poolTable(f.pool)).dataDevice, num);
    assert.is(await b.deviceNumber(path.join(path.dirname(f.dataFile), 'no-such-node')), null);
  });

  add('a message is committed when it returns (crash image of the metadata device)', async (h) => {
    const b = h.backend;
    const f = await makePool(h);
    await b.createThin(f.pool, 3);
    await b.createSnap(f.pool, 4, 3);
    await b.setTransactionId(f.pool, 0, 1);
    // No status, suspend or flush in between: those commit too. The image holds what dm-thin wrote.
    const image = await h.crashImage(f.metaFile);
    const dev = await b.attachLoop(image, { readOnly: true });
    assert.equal(txAndIds(await b.readMetadata(dev)), { transactionId: 1, ids: [3, 4] });
    await b.detachLoop(dev);
  });

  add('loop devices: missing file, read-only filesystem, backing file, size', async (h) => {
    const b = h.backend;
    await rejects(b.attachLoop(h.missingPath()), 'ERR_KERNEL', 'ENOENT');
    const ro = await h.makeFile(MiB, { readOnlyFs: true });
    await rejects(b.attachLoop(ro), 'ERR_KERNEL', 'EROFS');
    const roDev = await b.attachLoop(ro, { readOnly: true });
    assert.is(await b.loopBackingFile(roDev), ro);
    await b.detachLoop(roDev);
    const file = await h.makeFile(3 * MiB);
    const dev = await b.attachLoop(file);
    assert.is(await b.blockDeviceSize(dev), 3 * MiB);
    assert.is(await b.loopBackingFile(dev), file);
    // a grown file: the loop keeps its size until LOOP_SET_CAPACITY
    await h.growFile(file, 5 * MiB);
    assert.is(await b.blockDeviceSize(dev), 3 * MiB);
    assert.is(await b.resizeLoop(dev), 5 * MiB);
    assert.is(await b.blockDeviceSize(dev), 5 * MiB);
    await b.detachLoop(dev);
    await rejects(b.loopBackingFile(dev), 'ERR_KERNEL', 'ENXIO');
  });

  add('filesystems: probe, mkfs, mount, busy remove, umount, snapshot keeps the filesystem', async (h) => {
    const b = h.backend;
    const f = await makePool(h);
    await b.createThin(f.pool, 0);
    const thin = h.name('fs');
    await b.activateThin(thin, { poolDevice: b.devicePath(f.pool), id: 0, lengthSectors: 32 * 2048 });
    const dev = b.devicePath(thin);
    await rejects(b.probeFsType(dev), 'ERR_FS_UNKNOWN');
    await b.mkfs(dev, 'ext4');
    assert.is(await b.probeFsType(dev), 'ext4');
    await rejects(b.mount(dev, h.missingPath(), { fsType: 'ext4' }), 'ERR_KERNEL', 'ENOENT');
    const dir = await h.makeDir();
    await b.mount(dev, dir, { fsType: 'ext4' });
    const m = await b.mounted(dir);
    assert.ok(m && m.fsType === 'ext4' && !m.readOnly, JSON.stringify(m));
    await rejects(b.remove(thin), 'ERR_KERNEL', 'EBUSY');
    await b.umount(dir);
    assert.is(await b.mounted(dir), null);
    await rejects(b.umount(dir), 'ERR_KERNEL', 'EINVAL');
    await b.remove(thin);
    await b.createSnap(f.pool, 1, 0);
    const snap = h.name('fssnap');
    await b.activateThin(snap, { poolDevice: b.devicePath(f.pool), id: 1, lengthSectors: 32 * 2048 });
    assert.is(await b.probeFsType(b.devicePath(snap)), 'ext4');
    await b.mount(b.devicePath(snap), dir, { fsType: 'ext4', readOnly: true });
    assert.is((await b.mounted(dir))!.readOnly, true);
    await b.umount(dir);
    assert.is((await b.thinStatus(snap)).state, 'active');
    assert.ok(((await b.thinStatus(snap)) as { mappedSectors: number }).mappedSectors > 0);
  });

  const U1 = '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f0';
  const U2 = 'c0ffee00-1234-4abc-8def-0123456789ab';

  add('mkfs with a uuid and args: fsUuid reads it from the superblock (ext4); bad input is refused with no effect', async (h) => {
    const b = h.backend;
    const f = await makePool(h);
    await b.createThin(f.pool, 0);
    const thin = h.name('u');
    await b.activateThin(thin, { poolDevice: b.devicePath(f.pool), id: 0, lengthSectors: 32 * 2048 });
    const dev = b.devicePath(thin);
    await rejects(b.fsUuid(dev), 'ERR_FS_UNKNOWN');
    for (const bad of ['', 'not-a-uuid', U1.toUpperCase(), U1.replace(/-/g, ''), `{${U1}}`, U1 + '0', U1.slice(1), '00000000-0000-0000-0000-000000000000', 42]) {
      await rejects(() => b.mkfs(dev, 'ext4', { uuid: bad as string }), 'ERR_DM_ARG');
    }
    for (const bad of ['-L x', [1], ['a\0b'], [null], null]) {
      await rejectsType(() => b.mkfs(dev, 'ext4', { args: bad as unknown as string[] }));
    }
    await rejectsType(() => b.mkfs(dev, 'btrfs' as 'ext4'));
    await rejects(b.probeFsType(dev), 'ERR_FS_UNKNOWN'); // none of those made anything
    await b.mkfs(dev, 'ext4', { uuid: U1, args: ['-L', 'tjlabel'] });
    assert.is(await b.probeFsType(dev), 'ext4');
    assert.is(await b.fsUuid(dev), U1);
    if (b.supports.hostPaths) {
      assert.is(await blkid(dev, 'UUID'), U1);
      assert.is(await blkid(dev, 'LABEL'), 'tjlabel', 'args reach the tool');
    }
    await rejects(() => b.mkfs(dev, 'ext4', { uuid: 'nope' }), 'ERR_DM_ARG');
    assert.is(await b.fsUuid(dev), U1, 'a refused mkfs leaves the filesystem as it was');
    // a snapshot has its origin's filesystem, UUID included (hence xfs's "nouuid" for snapshots)
    await b.snapshotActive(f.pool, 1, 0, thin);
    const snap = h.name('usnap');
    await b.activateThin(snap, { poolDevice: b.devicePath(f.pool), id: 1, lengthSectors: 32 * 2048 });
    assert.is(await b.fsUuid(b.devicePath(snap)), U1);
    // without a uuid the tool picks one: canonical, another one; the snapshot keeps its own blocks
    await b.mkfs(dev, 'ext4');
    const u = await b.fsUuid(dev);
    assert.ok(FS_UUID_RE.test(u), u);
    assert.is.not(u, U1);
    if (b.supports.hostPaths) assert.is(await blkid(dev, 'UUID'), u);
    assert.is(await b.fsUuid(b.devicePath(snap)), U1);
    // no superblock any more: unknown, as for probeFsType
    await b.zeroRange(dev, 0, 4096);
    await rejects(b.fsUuid(dev), 'ERR_FS_UNKNOWN');
    await rejects(b.probeFsType(dev), 'ERR_FS_UNKNOWN');
  });

  add('mkfs xfs with a uuid and args: fsUuid reads it (a 300 MiB thin: mkfs.xfs refuses smaller)', async (h) => {
    const b = h.backend;
    if (b.supports.hostPaths && !(await onPath('mkfs.xfs'))) {
      console.log('    xfs case skipped on the kernel: no mkfs.xfs on PATH (Debian: xfsprogs)');
      return;
    }
    // mkfs.xfs writes its 64 MiB log: the pool needs more data space than makePool's default
    const f = await makePool(h, 'pool', { dataBytes: 192 * MiB });
    await b.createThin(f.pool, 0);
    const thin = h.name('x');
    await b.activateThin(thin, { poolDevice: b.devicePath(f.pool), id: 0, lengthSectors: 300 * 2048 });
    const dev = b.devicePath(thin);
    await rejects(b.fsUuid(dev), 'ERR_FS_UNKNOWN');
    await rejects(() => b.mkfs(dev, 'xfs', { uuid: U2.toUpperCase() }), 'ERR_DM_ARG');
    await rejects(b.probeFsType(dev), 'ERR_FS_UNKNOWN');
    await b.mkfs(dev, 'xfs', { uuid: U2, args: ['-L', 'tjx'] });
    assert.is(await b.probeFsType(dev), 'xfs');
    assert.is(await b.fsUuid(dev), U2);
    if (b.supports.hostPaths) {
      assert.is(await blkid(dev, 'UUID'), U2);
      assert.is(await blkid(dev, 'LABEL'), 'tjx', 'args reach the tool');
    }
  });

  add('findLoop: null before attach, the loop after, null after detach; the file itself, not a name', async (h) => {
    const b = h.backend;
    const file = await h.makeFile(MiB);
    const other = await h.makeFile(MiB);
    await rejectsType(() => b.findLoop('relative/file'));
    await rejectsType(() => b.findLoop(''));
    await rejectsType(() => b.findLoop(7 as unknown as string));
    assert.is(await b.findLoop(file), null);
    assert.is(await b.findLoop(h.missingPath()), null);
    const dev = await b.attachLoop(file);
    const otherDev = await b.attachLoop(other, { readOnly: true });
    assert.is(await b.findLoop(file), dev);
    assert.is(await b.findLoop(other), otherDev);
    if (b.supports.hostPaths) {
      // the kernel reports the resolved path; a symlink to the file names the same file
      const link = path.join(path.dirname(file), 'link-to-file');
      await symlink(file, link);
      assert.is(await b.findLoop(link), dev);
    }
    // the same file bound twice: the lowest-numbered loop
    const dev2 = await b.attachLoop(file);
    assert.is(await b.findLoop(file), loopNumber(dev) < loopNumber(dev2) ? dev : dev2);
    await b.detachLoop(dev);
    assert.is(await b.findLoop(file), dev2);
    await b.detachLoop(dev2);
    assert.is(await b.findLoop(file), null);
    assert.is(await b.findLoop(other), otherDev);
    // unlinked: the loop still holds the old file, which no path names; a new file there is another file
    await removeFile(h, other);
    assert.is(await b.findLoop(other), null);
    await remakeFile(h, other, MiB);
    assert.is(await b.findLoop(other), null);
    assert.is(await b.blockDeviceSize(otherDev), MiB, 'the loop is still bound');
    await b.detachLoop(otherDev);
  });

  for (const [name, fn] of cases) {
    test(name, async () => {
      const h = await makeHarness(name);
      try {
        await fn(h);
      } finally {
        await h.cleanup();
      }
    });
  }
}

