import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Journal } from '@thinjournal/journal';
import { ModelBackend } from '@thinjournal/dm';
import { stateHash, nextFreeDeviceId } from '@thinjournal/model';
import { Engine, planReplay, applyReplay } from '../src/index.js';

const G = 2 ** 30, M = 2 ** 20;

async function history() {
  const base = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-replay-'));
  const backend = new ModelBackend();
  backend.addDisk('/dev/vdm', 64 * M);
  backend.addDisk('/dev/vdd', 8 * G);
  backend.addDisk('/dev/spare-m', 64 * M);
  backend.addDisk('/dev/spare-d', 8 * G);
  backend.mkdir('/mnt/x');
  const journal = await Journal.open(path.join(base, 'j'));
  const e = await Engine.open(journal, backend);
  await e.execute({ type: 'initPool', poolName: 'live', devicePrefix: 'live', dataDevice: '/dev/vdd', metadataDevice: '/dev/vdm', loopback: false, dataSize: 4 * G, metadataSize: 64 * M, blockSize: 65536 });
  await e.execute({ type: 'createBaseImage', size: G, fs: 'ext4', uuid: '11111111-2222-4333-8444-555555555555' });
  await e.execute({ type: 'addDevice', hash: 'l1', baseHash: '' });
  await e.execute({ type: 'addDevice', hash: 'l2', baseHash: 'l1' });
  const mid = e.state.txId;
  await e.execute({ type: 'mountDevice', hash: 'l2', path: '/mnt/x' });
  await e.execute({ type: 'addDevice', hash: 'c1', baseHash: 'l2' }); // active origin
  await e.execute({ type: 'createDevice', hash: 'scratch', size: G });
  await e.execute({ type: 'deleteDevice', hash: 'scratch', syncDelete: true });
  await e.execute({ type: 'resizePool', dataSize: 6 * G });
  // a rolled-back operation: the kernel refuses create_snap because the id is taken behind our back
  const taken = nextFreeDeviceId(e.state);
  await backend.createThin('live', taken);
  const before = e.state;
  let refused = '';
  try { await e.execute({ type: 'addDevice', hash: 'c2', baseHash: 'l1' }); } catch (err) { refused = (err as { code?: string }).code ?? 'x'; }
  await backend.deleteThin('live', taken);
  return { base, backend, journal, e, mid, refused, before };
}

test('replay rebuilds the pool on an empty metadata device: same ids, same transaction id, state hash equal', async () => {
  const h = await history();
  try {
    assert.ok(h.refused, 'the refused operation was rolled back');
    const records = await h.journal.read();
    const plan = planReplay(records, { metadataDevice: '/dev/spare-m', dataDevice: '/dev/spare-d', poolName: 'rebuilt' });
    assert.is(plan.stateHash, stateHash(h.e.state), 'replayed state hash = the journal state hash');
    assert.equal(plan.skippedTransactions.map((s) => s.outcome), ['rolled-back']);
    assert.equal(plan.steps.map((s) => s.kind), ['createPool', 'createThin', 'setTransactionId', 'createSnap', 'setTransactionId', 'createSnap', 'setTransactionId', 'createSnap', 'setTransactionId', 'createThin', 'setTransactionId', 'deleteThin', 'setTransactionId', 'setTransactionId']);
    const r = await applyReplay(plan, h.backend);
    assert.ok(r.matches, JSON.stringify(r));
    const live = await h.backend.poolMetadata('live');
    assert.equal({ tx: r.transactionId, ids: r.ids }, { tx: live.transactionId, ids: live.ids }, 'the rebuilt pool equals the live one');
    assert.equal((await h.backend.poolTable('rebuilt')).lengthSectors, 6 * G / 512, 'built at the resized size');
    // never onto a pool
    try { await applyReplay(plan, h.backend); assert.unreachable(); } catch (err) { assert.is((err as { code?: string }).code, 'ERR_POOL_EXISTS'); }
  } finally { await h.journal.close(); rmSync(h.base, { recursive: true, force: true }); }
});

test('replay --to a transaction id stops at that point in time', async () => {
  const h = await history();
  try {
    const plan = planReplay(await h.journal.read(), { toTxId: h.mid, metadataDevice: '/dev/spare-m', dataDevice: '/dev/spare-d', poolName: 'past' });
    assert.is(plan.transactionId, h.mid);
    assert.equal([...plan.state.devices.keys()].sort(), ['', 'l1', 'l2']);
    const r = await applyReplay(plan, h.backend);
    assert.ok(r.matches);
    assert.is(r.transactionId, h.mid);
    const bySeq = planReplay(await h.journal.read(), { toSeq: plan.lastSeq });
    assert.is(bySeq.stateHash, plan.stateHash, '--to seq and --to txId agree at the same point');
  } finally { await h.journal.close(); rmSync(h.base, { recursive: true, force: true }); }
});


test('replay builds the pool on the devices the journal last named (PoolDevicesAttached), unless told otherwise', async () => {
  const h = await history();
  try {
    h.backend.addDisk('/dev/moved-d', 8 * G);
    h.backend.addDisk('/dev/moved-m', 64 * M);
    await h.e.execute({ type: 'attachPoolDevices', dataDevice: '/dev/moved-d', metadataDevice: '/dev/moved-m' });
    const records = await h.journal.read();
    assert.ok(records.some((r) => r.type === 'PoolDevicesAttached'));
    const plan = planReplay(records, { poolName: 'rebuilt' });
    const create = plan.steps[0]!;
    assert.ok(create.kind === 'createPool');
    assert.is(create.pool.dataDevice, '/dev/moved-d');
    assert.is(create.pool.metadataDevice, '/dev/moved-m');
    assert.is(create.pool.dataSize, 6 * G);
    const told = planReplay(records, { poolName: 'rebuilt', dataDevice: '/dev/spare-d', metadataDevice: '/dev/spare-m' }).steps[0]!;
    assert.ok(told.kind === 'createPool' && told.pool.dataDevice === '/dev/spare-d' && told.pool.metadataDevice === '/dev/spare-m');
  } finally {
    await h.journal.close();
    rmSync(h.base, { recursive: true, force: true });
  }
});

test.run();
