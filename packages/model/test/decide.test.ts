// Each command: its events, the resulting state, device-id allocation, transaction ids, and its refusals.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  decide, tryDecide, nextFreeDeviceId, fromPlain, toPlain, stateHash, MAX_DEVICE_ID, GIB,
  listDevices, hasDevice, deviceStatus, deferredDeletionOrder, type State,
} from '../src/index.js';
import { Harness, withBase, initCommand, UUID } from './helpers.js';

const G10 = 10 * GIB;

test('initPool: one PoolInitialised at the pool\'s transaction id; a second is refused', () => {
  const h = new Harness();
  const ev = h.run(initCommand());
  assert.is(ev.length, 1);
  assert.is(ev[0]!.type, 'PoolInitialised');
  assert.is(ev[0]!.txId, 0);
  assert.is(h.state.txId, 0);
  assert.is(h.state.pool!.poolName, 'docker-8:1-1234-pool');
  assert.is(h.state.pool!.devicePrefix, 'docker-8:1-1234');
  assert.is(h.state.pool!.blockSize, 65536);
  assert.is(h.state.pool!.options['dm.basesize'], String(G10));
  h.refuses(initCommand(), 'ERR_POOL_EXISTS');
  // adopting a pool at transaction 7
  const a = new Harness();
  a.run({ ...initCommand(), transactionId: 7, devicePrefix: 'docker-253:0-42' } as never);
  assert.is(a.state.txId, 7);
  assert.is(a.state.pool!.devicePrefix, 'docker-253:0-42');
});

test('initPool: bad input is refused', () => {
  const h = new Harness();
  const c = initCommand() as Extract<ReturnType<typeof initCommand>, { type: 'initPool' }>;
  h.refuses({ ...c, poolName: 'a/b' }, 'ERR_BAD_ID', 'contains "/"');
  h.refuses({ ...c, poolName: '' }, 'ERR_BAD_ID');
  h.refuses({ ...c, poolName: 'p'.repeat(128) }, 'ERR_BAD_ID', 'longer than 127 bytes');
  h.refuses({ ...c, dataSize: 0 }, 'ERR_BAD_SIZE', 'not positive');
  h.refuses({ ...c, dataSize: -512 }, 'ERR_BAD_SIZE', 'not positive');
  h.refuses({ ...c, dataSize: NaN }, 'ERR_BAD_SIZE', 'NaN');
  h.refuses({ ...c, dataSize: 1000 }, 'ERR_BAD_SIZE', 'multiple of 512');
  h.refuses({ ...c, dataSize: 2 ** 60 }, 'ERR_BAD_SIZE');
  h.refuses({ ...c, dataSize: 1024 }, 'ERR_BAD_SIZE', 'smaller than one block');
  h.refuses({ ...c, blockSize: 100 * 1024 }, 'ERR_BAD_SIZE', 'multiple of 64 KiB');
  h.refuses({ ...c, metadataSize: 1.5 }, 'ERR_BAD_SIZE');
  h.refuses({ ...c, transactionId: -1 }, 'ERR_BAD_SIZE');
});

test('createBaseImage: TransactionBegan + BaseImageCreated at txId+1, device id 1, visible after commit', () => {
  const h = new Harness();
  h.op(initCommand());
  h.refuses({ type: 'addDevice', hash: 'a', baseHash: '' }, 'ERR_DEVICE_NOT_FOUND');
  const ev = h.run({ type: 'createBaseImage', size: G10, fs: 'ext4', uuid: UUID });
  assert.equal(ev, [
    { type: 'TransactionBegan', txId: 1, body: { op: 'createBaseImage', hash: '' } },
    { type: 'BaseImageCreated', txId: 1, body: { hash: '', deviceId: 1, size: G10, fs: 'ext4', uuid: UUID } },
  ]);
  // intent only: nothing committed yet
  assert.is(h.state.txId, 0);
  assert.is(h.state.base, null);
  assert.is(h.state.devices.size, 0);
  assert.is(h.state.pending!.txId, 1);
  h.refuses({ type: 'createBaseImage', size: G10, fs: 'ext4', uuid: UUID }, 'ERR_DEVICE_BUSY', 'still pending');
  h.commit();
  assert.is(h.state.txId, 1);
  assert.equal(h.state.base, { hash: '', deviceId: 1, fs: 'ext4', uuid: UUID });
  const base = h.state.devices.get('')!;
  assert.is(base.deviceId, 1);
  assert.is(base.initialised, true);
  assert.is(base.txId, 1);
  assert.is(base.parentHash, null);
  h.refuses({ type: 'createBaseImage', size: G10, fs: 'ext4', uuid: UUID }, 'ERR_DEVICE_EXISTS');
});

test('createBaseImage: refusals', () => {
  const h = new Harness();
  h.refuses({ type: 'createBaseImage', size: G10, fs: 'xfs', uuid: UUID }, 'ERR_POOL_NOT_INITIALISED');
  h.op(initCommand());
  h.refuses({ type: 'createBaseImage', size: G10, fs: 'btrfs' as 'xfs', uuid: UUID }, 'ERR_BAD_OPTION', 'dm.fs');
  h.refuses({ type: 'createBaseImage', size: G10, fs: 'xfs', uuid: 'not-a-uuid' }, 'ERR_BAD_ID', 'UUID');
  h.refuses({ type: 'createBaseImage', size: G10, fs: 'xfs', uuid: UUID.toUpperCase() }, 'ERR_BAD_ID');
  h.refuses({ type: 'createBaseImage', size: 0, fs: 'xfs', uuid: UUID }, 'ERR_BAD_SIZE');
});

test('addDevice: a snapshot of the base at txId+1 with the next id; default and larger sizes', () => {
  const h = withBase();
  const ev = h.run({ type: 'addDevice', hash: 'layer1', baseHash: '' });
  assert.equal(ev, [
    { type: 'TransactionBegan', txId: 2, body: { op: 'addDevice', hash: 'layer1' } },
    { type: 'SnapshotCreated', txId: 2, body: { hash: 'layer1', deviceId: 2, parentHash: '', parentDeviceId: 1, size: G10 } },
  ]);
  assert.not.ok(hasDevice(h.state, 'layer1'), 'not visible before commit');
  h.commit();
  const d = h.state.devices.get('layer1')!;
  assert.equal({ id: d.deviceId, size: d.size, parent: d.parentHash, tx: d.txId, init: d.initialised, active: d.active }, { id: 2, size: G10, parent: '', tx: 2, init: true, active: false });
  assert.is(h.state.childCounts.get(''), 1);
  h.op({ type: 'addDevice', hash: 'layer2', baseHash: 'layer1', size: 2 * G10 });
  assert.is(h.state.devices.get('layer2')!.size, 2 * G10);
  assert.is(h.state.devices.get('layer2')!.deviceId, 3);
  assert.is(h.state.txId, 3);
  h.op({ type: 'addDevice', hash: 'layer3', baseHash: 'layer2', size: 0 });
  assert.is(h.state.devices.get('layer3')!.size, 2 * G10, 'size 0 means the parent\'s (Docker)');
  assert.equal(listDevices(h.state), ['', 'layer1', 'layer2', 'layer3']);
  assert.equal(deviceStatus(h.state, 'layer2'), { deviceId: 3, size: 2 * G10, transactionId: 3, sizeInSectors: (2 * G10) / 512 });
});

test('addDevice: refusals, each with the state unchanged', () => {
  const h = withBase();
  h.op({ type: 'addDevice', hash: 'a', baseHash: '' });
  h.refuses({ type: 'addDevice', hash: 'a', baseHash: '' }, 'ERR_DEVICE_EXISTS');
  h.refuses({ type: 'addDevice', hash: 'b', baseHash: 'nope' }, 'ERR_DEVICE_NOT_FOUND');
  h.refuses({ type: 'addDevice', hash: 'b', baseHash: '', size: G10 - 512 }, 'ERR_BAD_SIZE', 'smaller than its parent');
  h.refuses({ type: 'addDevice', hash: 'b', baseHash: '', size: -1 }, 'ERR_BAD_SIZE');
  h.refuses({ type: 'addDevice', hash: 'b', baseHash: '', size: NaN }, 'ERR_BAD_SIZE');
  h.refuses({ type: 'addDevice', hash: 'b', baseHash: '', size: Number.MAX_SAFE_INTEGER }, 'ERR_BAD_SIZE');
  h.refuses({ type: 'addDevice', hash: 'b', baseHash: '', size: 2 ** 53 }, 'ERR_BAD_SIZE');
  const badIds: [unknown, string][] = [
    ['', 'empty'], ['a/b', 'path separator'], ['a\\b', 'path separator'], ['..', '".."'], ['a..b', '".."'], ['.', '"."'],
    ['a\u0000b', 'control'], ['a\nb', 'control'], ['a\u007fb', 'control'], ['a\u0085b', 'control'], ['x'.repeat(256), '255 bytes'],
    ['é'.repeat(128), '255 bytes'], ['\ud800x', 'lone surrogate'], ['base', 'reserved'], [42, 'not a string'], [null, 'not a string'],
  ];
  for (const [id, why] of badIds) h.refuses({ type: 'addDevice', hash: id as string, baseHash: '' }, 'ERR_BAD_ID', why);
  h.refuses({ type: 'addDevice', hash: 'ok', baseHash: '../x' }, 'ERR_BAD_ID');
});

test('addDevice / createDevice: an id whose dm name (<devicePrefix>-<id>) would pass 127 bytes is refused before any event', () => {
  const h = withBase();
  const prefix = h.state.pool!.devicePrefix; // "docker-8:1-1234": 15 bytes, so ids up to 127 - 16 = 111 bytes
  assert.is(prefix, 'docker-8:1-1234');
  const longest = 'x'.repeat(127 - prefix.length - 1);
  for (const c of [
    { type: 'addDevice', hash: 'x'.repeat(200), baseHash: '' },
    { type: 'createDevice', hash: 'x'.repeat(200), size: G10 },
  ] as const) {
    const e = h.refuses(c, 'ERR_BAD_ID');
    assert.match(e.message, /^id "x+…" is 200 bytes; with the device prefix "docker-8:1-1234" the device name would be 216 bytes, over the kernel's 127 \(ids of this pool can be at most 111 bytes\)$/);
  }
  h.refuses({ type: 'addDevice', hash: longest + 'y', baseHash: '' }, 'ERR_BAD_ID', 'would be 128 bytes');
  // Bytes, not characters: 56 two-byte characters make a 112-byte id.
  h.refuses({ type: 'addDevice', hash: 'é'.repeat(56), baseHash: '' }, 'ERR_BAD_ID', 'is 112 bytes');
  h.op({ type: 'addDevice', hash: longest, baseHash: '' });
  assert.ok(hasDevice(h.state, longest));
  // The id that fits is the one the device is activated under: exactly 127 bytes.
  const [act] = h.run({ type: 'activateDevice', hash: longest });
  assert.is((act!.body as { name: string }).name, `${prefix}-${longest}`);
  assert.is(Buffer.byteLength((act!.body as { name: string }).name), 127);
  // A shorter prefix leaves room for longer ids.
  const short = new Harness();
  short.op({ ...initCommand(), poolName: 'p-pool', devicePrefix: 'p' } as never);
  short.op({ type: 'createBaseImage', size: G10, fs: 'xfs', uuid: UUID });
  short.op({ type: 'addDevice', hash: 'x'.repeat(125), baseHash: '' });
  short.refuses({ type: 'addDevice', hash: 'x'.repeat(126), baseHash: '' }, 'ERR_BAD_ID', 'at most 125 bytes');
});

test('addDevice: dm.min_free_space refuses new devices when the pool is short, saying how much is free', () => {
  const h = withBase();
  const usage = { dataUsed: 950, dataTotal: 1000, metadataUsed: 10, metadataTotal: 1000 };
  const e = h.refuses({ type: 'addDevice', hash: 'a', baseHash: '', usage }, 'ERR_NO_SPACE', '50 free data blocks of 1000, less than the minimum 100');
  assert.match(e.message, /dm\.min_free_space=10%/);
  h.refuses({ type: 'addDevice', hash: 'a', baseHash: '', usage: { ...usage, dataUsed: 0, metadataUsed: 995 } }, 'ERR_NO_SPACE', 'metadata');
  h.refuses({ type: 'addDevice', hash: 'a', baseHash: '', usage: { ...usage, dataUsed: 2000 } }, 'ERR_BAD_SIZE', 'exceeds');
  assert.is(decide(h.state, { type: 'addDevice', hash: 'a', baseHash: '', usage, minFreeSpacePercent: 5 }).length, 2);
  assert.is(decide(h.state, { type: 'addDevice', hash: 'a', baseHash: '', usage: { ...usage, dataUsed: 900 } }).length, 2);
  const low = withBase(['dm.min_free_space=0%']);
  assert.is(decide(low.state, { type: 'addDevice', hash: 'a', baseHash: '', usage: { ...usage, dataUsed: 1000 } }).length, 2, '0% disables the check');
  h.refuses({ type: 'createDevice', hash: 'e', size: G10, usage }, 'ERR_NO_SPACE');
});

test('createDevice: an empty thin device without a filesystem', () => {
  const h = withBase();
  const ev = h.op({ type: 'createDevice', hash: 'scratch', size: GIB });
  assert.equal(ev, [
    { type: 'TransactionBegan', txId: 2, body: { op: 'createDevice', hash: 'scratch' } },
    { type: 'DeviceCreated', txId: 2, body: { hash: 'scratch', deviceId: 2, size: GIB } },
  ]);
  assert.is(h.state.devices.get('scratch')!.initialised, false);
  h.refuses({ type: 'createDevice', hash: 'scratch', size: GIB }, 'ERR_DEVICE_EXISTS');
});

test('device ids: next-id-with-wrap; freed and rolled-back ids are not reused at once; wrap at 2^24', () => {
  const h = withBase();
  h.op({ type: 'addDevice', hash: 'a', baseHash: '' }); // 2
  h.op({ type: 'addDevice', hash: 'b', baseHash: '' }); // 3
  h.op({ type: 'deleteDevice', hash: 'a' }); // frees 2
  assert.not.ok(h.state.deviceIds.has(2));
  h.op({ type: 'addDevice', hash: 'c', baseHash: '' });
  assert.is(h.state.devices.get('c')!.deviceId, 4, 'the freed id 2 is not reused');
  h.run({ type: 'addDevice', hash: 'd', baseHash: '' }); // intent takes 5
  h.rollback('kernel refused');
  assert.not.ok(h.state.devices.has('d'));
  assert.is(h.state.nextDeviceId, 5, 'the cursor keeps the rolled-back id');
  h.op({ type: 'addDevice', hash: 'd', baseHash: '' });
  assert.is(h.state.devices.get('d')!.deviceId, 6, 'the rolled-back id 5 is not reused');
  assert.is(h.state.txId, 6, 'the rolled-back transaction did not advance txId');

  // Near the top: the cursor wraps to 0 and skips ids in use.
  const plain = toPlain(h.state);
  const top = fromPlain({ ...plain, nextDeviceId: MAX_DEVICE_ID - 1 });
  assert.is(nextFreeDeviceId(top), MAX_DEVICE_ID);
  const wrapped = fromPlain({ ...plain, nextDeviceId: MAX_DEVICE_ID });
  assert.is(nextFreeDeviceId(wrapped), 0);
  const wrappedPast = fromPlain({ ...plain, nextDeviceId: MAX_DEVICE_ID, devices: plain.devices.map((d) => (d.hash === 'b' ? { ...d, deviceId: 0 } : d)) });
  assert.is(nextFreeDeviceId(wrappedPast), 2, 'skips ids 0 ("b") and 1 (the base) after the wrap');
  // All 2^24 ids in use: ERR_NO_SPACE, nothing decided.
  const full: State = { ...h.state, deviceIds: { has: () => true, get: () => 'x', size: MAX_DEVICE_ID + 1 } as unknown as State['deviceIds'] };
  try { decide(full, { type: 'addDevice', hash: 'z', baseHash: '' }); assert.unreachable(); } catch (e) { assert.is((e as { code: string }).code, 'ERR_NO_SPACE'); }
});

test('deleteDevice: inactive → a transaction; refused when mounted, active, open, has snapshots, or is the base', () => {
  const h = withBase();
  h.op({ type: 'addDevice', hash: 'p', baseHash: '' });
  h.op({ type: 'addDevice', hash: 'c', baseHash: 'p' });
  h.refuses({ type: 'deleteDevice', hash: 'p' }, 'ERR_DEVICE_BUSY', '1 snapshot(s)');
  h.refuses({ type: 'deleteDevice', hash: '' }, 'ERR_DEVICE_BUSY', 'base image');
  h.refuses({ type: 'deleteDevice', hash: 'nope' }, 'ERR_DEVICE_NOT_FOUND');
  h.op({ type: 'mountDevice', hash: 'c', path: '/mnt/c' });
  h.refuses({ type: 'deleteDevice', hash: 'c' }, 'ERR_DEVICE_BUSY', 'unmount it first');
  h.op({ type: 'unmountDevice', hash: 'c', path: '/mnt/c', deactivate: false });
  h.refuses({ type: 'deleteDevice', hash: 'c' }, 'ERR_DEVICE_BUSY', 'deactivate it first');
  h.op({ type: 'deactivateDevice', hash: 'c' });
  h.refuses({ type: 'deleteDevice', hash: 'c', busy: true }, 'ERR_DEVICE_BUSY', 'open');
  const ev = h.run({ type: 'deleteDevice', hash: 'c', syncDelete: true });
  assert.equal(ev, [
    { type: 'TransactionBegan', txId: 4, body: { op: 'deleteDevice', hash: 'c' } },
    { type: 'DeviceDeleted', txId: 4, body: { hash: 'c', deviceId: 3 } },
  ]);
  assert.ok(h.state.devices.has('c'), 'still there until commit');
  h.commit();
  assert.not.ok(h.state.devices.has('c'));
  assert.not.ok(h.state.deviceIds.has(3));
  assert.is(h.state.childCounts.get('p'), undefined);
  h.op({ type: 'deleteDevice', hash: 'p' });
  assert.equal(listDevices(h.state), ['']);
});

test('deferred deletion: a busy device is marked (current txId), retried later, deleted children-first', () => {
  const h = withBase(['dm.use_deferred_removal=true', 'dm.use_deferred_deletion=true']);
  h.op({ type: 'addDevice', hash: 'p', baseHash: '' });
  h.op({ type: 'addDevice', hash: 'c', baseHash: 'p' });
  const T = h.state.txId;
  const ev = h.run({ type: 'deleteDevice', hash: 'c', busy: true });
  assert.equal(ev, [{ type: 'DeletionDeferred', txId: T, body: { hash: 'c', deviceId: 3 } }]);
  assert.is(h.state.txId, T, 'marking is not a pool transaction');
  assert.equal(h.state.deferredDeletions, ['c']);
  assert.not.ok(hasDevice(h.state, 'c'));
  assert.ok(h.state.deviceIds.has(3), 'its id stays taken');
  h.refuses({ type: 'deleteDevice', hash: 'c', busy: true, syncDelete: true }, 'ERR_DEVICE_BUSY');
  h.refuses({ type: 'mountDevice', hash: 'c', path: '/mnt/c' }, 'ERR_DEVICE_NOT_FOUND', 'deferred deletion');
  h.refuses({ type: 'activateDevice', hash: 'c' }, 'ERR_DEVICE_NOT_FOUND');
  h.refuses({ type: 'addDevice', hash: 'c', baseHash: '' }, 'ERR_DEVICE_EXISTS', 'deferred deletion');
  h.refuses({ type: 'addDevice', hash: 'x', baseHash: 'c' }, 'ERR_DEVICE_NOT_FOUND');
  // The parent's only snapshot awaits deletion: the parent is deferred too (sync delete refused).
  h.refuses({ type: 'deleteDevice', hash: 'p', syncDelete: true }, 'ERR_DEVICE_BUSY', 'await deferred deletion');
  h.run({ type: 'deleteDevice', hash: 'p' });
  assert.equal(h.state.deferredDeletions, ['c', 'p']);
  assert.equal(deferredDeletionOrder(h.state), ['c', 'p']);
  // Retries: the parent waits for its child; a busy child yields nothing.
  assert.equal(decide(h.state, { type: 'retryDeferredDeletion', hash: 'p' }), []);
  assert.equal(decide(h.state, { type: 'retryDeferredDeletion', hash: 'c', busy: true }), []);
  h.op({ type: 'retryDeferredDeletion', hash: 'c' });
  assert.equal(h.state.deferredDeletions, ['p']);
  h.op({ type: 'retryDeferredDeletion', hash: 'p' });
  assert.equal(h.state.deferredDeletions, []);
  assert.equal(listDevices(h.state, { includeDeferred: true }), ['']);
  h.refuses({ type: 'retryDeferredDeletion', hash: '' }, 'ERR_DEVICE_BUSY');
  h.op({ type: 'addDevice', hash: 'q', baseHash: '' });
  h.refuses({ type: 'retryDeferredDeletion', hash: 'q' }, 'ERR_DEVICE_NOT_FOUND', 'not awaiting');
  // Without the policy, a busy delete is refused.
  const strict = withBase();
  strict.op({ type: 'addDevice', hash: 'a', baseHash: '' });
  strict.refuses({ type: 'deleteDevice', hash: 'a', busy: true }, 'ERR_DEVICE_BUSY');
  assert.is(decide(strict.state, { type: 'deleteDevice', hash: 'a', busy: true, deferredDeletion: true }).length, 1, 'the command may override the recorded policy');
});

test('activate / deactivate: dm names, deferred removal, its completion and its cancellation', () => {
  const h = withBase(['dm.use_deferred_removal=true']);
  h.op({ type: 'addDevice', hash: 'a', baseHash: '' });
  const T = h.state.txId;
  assert.equal(h.run({ type: 'activateDevice', hash: 'a' }), [{ type: 'DeviceActivated', txId: T, body: { hash: 'a', deviceId: 2, name: 'docker-8:1-1234-a', size: G10 } }]);
  assert.equal(decide(h.state, { type: 'activateDevice', hash: 'a' }), [], 'already active');
  assert.equal(decide(h.state, { type: 'activateDevice', hash: '' }), [{ type: 'DeviceActivated', txId: T, body: { hash: '', deviceId: 1, name: 'docker-8:1-1234-base', size: G10 } }]);
  assert.is(h.state.devices.get('a')!.dmName, 'docker-8:1-1234-a');
  // open: deferred removal
  assert.equal(h.run({ type: 'deactivateDevice', hash: 'a', openCount: 2 }), [{ type: 'DeviceDeactivated', txId: T, body: { hash: 'a', deferred: true } }]);
  let d = h.state.devices.get('a')!;
  assert.equal([d.active, d.removalDeferred], [true, true]);
  assert.equal(decide(h.state, { type: 'deactivateDevice', hash: 'a', openCount: 1 }), [], 'still open');
  // re-activation cancels the deferred removal
  assert.equal(h.run({ type: 'activateDevice', hash: 'a' }), [{ type: 'DeviceActivated', txId: T, body: { hash: 'a', deviceId: 2, name: 'docker-8:1-1234-a', size: G10 } }]);
  d = h.state.devices.get('a')!;
  assert.equal([d.active, d.removalDeferred], [true, false]);
  h.run({ type: 'deactivateDevice', hash: 'a', openCount: 1 });
  // the kernel removed it on last close
  assert.equal(h.run({ type: 'deactivateDevice', hash: 'a', openCount: 0 }), [{ type: 'DeviceDeactivated', txId: T, body: { hash: 'a', deferred: false } }]);
  d = h.state.devices.get('a')!;
  assert.equal([d.active, d.removalDeferred, d.dmName], [false, false, null]);
  assert.equal(decide(h.state, { type: 'deactivateDevice', hash: 'a' }), [], 'inactive: nothing to do');
  // without deferred removal an open device is busy
  const s = withBase();
  s.op({ type: 'addDevice', hash: 'a', baseHash: '' });
  s.op({ type: 'activateDevice', hash: 'a' });
  s.refuses({ type: 'deactivateDevice', hash: 'a', openCount: 1 }, 'ERR_DEVICE_BUSY', 'deferred removal is off');
  s.refuses({ type: 'activateDevice', hash: 'a'.repeat(120) }, 'ERR_DEVICE_NOT_FOUND');
  // A device whose name cannot fit (decide refuses to create one; a journal may still hold it) is not activated.
  const L = 'L'.repeat(120);
  s.apply([
    { type: 'TransactionBegan', txId: s.state.txId + 1, body: { op: 'addDevice', hash: L } },
    { type: 'SnapshotCreated', txId: s.state.txId + 1, body: { hash: L, deviceId: 99, parentHash: '', parentDeviceId: 1, size: G10 } },
  ]);
  s.commit();
  s.refuses({ type: 'activateDevice', hash: L }, 'ERR_BAD_ID', '127 bytes');
  s.op({ type: 'addDevice', hash: 'n', baseHash: '' });
  s.refuses({ type: 'activateDevice', hash: 'n', name: 'x/y' }, 'ERR_BAD_ID', 'contains "/"');
});

test('mount / unmount: activation when needed, Docker\'s mount options, idempotent, last unmount deactivates', () => {
  const h = withBase(['dm.mountopt=noatime']);
  h.op({ type: 'addDevice', hash: 'a', baseHash: '' });
  const T = h.state.txId;
  const ev = h.run({ type: 'mountDevice', hash: 'a', path: '/var/lib/thinjournal/mnt/a' });
  assert.equal(ev, [
    { type: 'DeviceActivated', txId: T, body: { hash: 'a', deviceId: 2, name: 'docker-8:1-1234-a', size: G10 } },
    { type: 'DeviceMounted', txId: T, body: { hash: 'a', path: '/var/lib/thinjournal/mnt/a', options: 'nouuid,noatime' } },
  ]);
  assert.is(h.state.txId, T);
  assert.equal(decide(h.state, { type: 'mountDevice', hash: 'a', path: '/var/lib/thinjournal/mnt/a' }), [], 'already mounted there');
  assert.equal(h.run({ type: 'mountDevice', hash: 'a', path: '/mnt/second', options: '' }), [{ type: 'DeviceMounted', txId: T, body: { hash: 'a', path: '/mnt/second' } }]);
  assert.equal(h.state.devices.get('a')!.mounts, [{ path: '/mnt/second', options: null }, { path: '/var/lib/thinjournal/mnt/a', options: 'nouuid,noatime' }]);
  assert.equal(h.run({ type: 'unmountDevice', hash: 'a', path: '/mnt/second' }), [{ type: 'DeviceUnmounted', txId: T, body: { hash: 'a', path: '/mnt/second' } }]);
  assert.equal(h.run({ type: 'unmountDevice', hash: 'a', path: '/var/lib/thinjournal/mnt/a' }), [
    { type: 'DeviceUnmounted', txId: T, body: { hash: 'a', path: '/var/lib/thinjournal/mnt/a' } },
    { type: 'DeviceDeactivated', txId: T, body: { hash: 'a', deferred: false } },
  ]);
  h.refuses({ type: 'unmountDevice', hash: 'a', path: '/mnt/second' }, 'ERR_DEVICE_NOT_FOUND', 'not mounted');
  for (const p of ['relative/path', '/', '/a//b', '/a/../b', '/a/./b', '/a/', '/a\u0000b', '/a\nb', 42]) {
    h.refuses({ type: 'mountDevice', hash: 'a', path: p as string }, 'ERR_BAD_ID', 'mount path');
  }
  h.refuses({ type: 'mountDevice', hash: 'a', path: '/mnt/a', options: 'rw, noatime' }, 'ERR_BAD_ID', 'whitespace');
  h.refuses({ type: 'mountDevice', hash: 'zz', path: '/mnt/a' }, 'ERR_DEVICE_NOT_FOUND');
  // open elsewhere at the last unmount: deferred removal if on, else it stays active
  h.run({ type: 'mountDevice', hash: 'a', path: '/mnt/a' });
  assert.equal(decide(h.state, { type: 'unmountDevice', hash: 'a', path: '/mnt/a', openCount: 1 }).map((e) => e.type), ['DeviceUnmounted']);
  assert.equal(decide(h.state, { type: 'unmountDevice', hash: 'a', path: '/mnt/a', openCount: 1, deferredRemoval: true }).map((e) => e.type), ['DeviceUnmounted', 'DeviceDeactivated']);
});

test('mount of a device whose removal was deferred re-activates it first; ext4 gets no nouuid', () => {
  const h = new Harness();
  h.op(initCommand(['dm.fs=ext4', 'dm.use_deferred_removal=true']));
  h.op({ type: 'createBaseImage', size: G10, fs: 'ext4', uuid: UUID });
  h.op({ type: 'addDevice', hash: 'a', baseHash: '' });
  h.run({ type: 'activateDevice', hash: 'a' });
  h.run({ type: 'deactivateDevice', hash: 'a', openCount: 1 });
  const ev = h.run({ type: 'mountDevice', hash: 'a', path: '/mnt/a' });
  assert.equal(ev.map((e) => e.type), ['DeviceActivated', 'DeviceMounted']);
  assert.equal(ev[1]!.body, { hash: 'a', path: '/mnt/a' });
  assert.is(h.state.devices.get('a')!.removalDeferred, false);
});

test('resizePool grows only; resizeDevice grows only (e.g. the base image to a larger dm.basesize)', () => {
  const h = withBase();
  const pool = h.state.pool!;
  assert.equal(h.op({ type: 'resizePool', dataSize: pool.dataSize * 2 }), [
    { type: 'TransactionBegan', txId: 2, body: { op: 'resizePool' } },
    { type: 'PoolResized', txId: 2, body: { dataSize: pool.dataSize * 2 } },
  ]);
  assert.is(h.state.pool!.dataSize, pool.dataSize * 2);
  h.op({ type: 'resizePool', dataSize: pool.dataSize * 2, metadataSize: pool.metadataSize * 2 });
  assert.is(h.state.pool!.metadataSize, pool.metadataSize * 2);
  assert.equal(decide(h.state, { type: 'resizePool', dataSize: pool.dataSize * 2 }), [], 'same size: nothing to do');
  h.refuses({ type: 'resizePool', dataSize: pool.dataSize }, 'ERR_BAD_SIZE', 'only grows');
  h.refuses({ type: 'resizePool', dataSize: pool.dataSize * 2, metadataSize: 512 }, 'ERR_BAD_SIZE');
  h.refuses({ type: 'resizePool', dataSize: NaN }, 'ERR_BAD_SIZE');
  const T = h.state.txId;
  assert.equal(h.run({ type: 'resizeDevice', hash: '', size: 20 * GIB }), [{ type: 'DeviceResized', txId: T, body: { hash: '', size: 20 * GIB } }]);
  assert.is(h.state.devices.get('')!.size, 20 * GIB);
  h.refuses({ type: 'resizeDevice', hash: '', size: G10 }, 'ERR_BAD_SIZE', 'only grow');
  assert.equal(decide(h.state, { type: 'resizeDevice', hash: '', size: 20 * GIB }), []);
  // new snapshots of the base now default to its new size
  h.op({ type: 'addDevice', hash: 'a', baseHash: '' });
  assert.is(h.state.devices.get('a')!.size, 20 * GIB);
});

test('read-only commands produce no events; mutating commands wait for a pending transaction', () => {
  const h = withBase();
  h.op({ type: 'addDevice', hash: 'a', baseHash: '' });
  for (const c of [{ type: 'hasDevice', hash: 'a' }, { type: 'hasDevice', hash: 'zz' }, { type: 'getDeviceStatus', hash: 'a' }, { type: 'list' }, { type: 'status' }] as const) {
    assert.equal(decide(h.state, c), []);
  }
  h.refuses({ type: 'getDeviceStatus', hash: 'zz' }, 'ERR_DEVICE_NOT_FOUND');
  h.refuses({ type: 'hasDevice', hash: 'a/b' }, 'ERR_BAD_ID');
  h.run({ type: 'addDevice', hash: 'b', baseHash: 'a' });
  h.refuses({ type: 'addDevice', hash: 'c', baseHash: '' }, 'ERR_DEVICE_BUSY', 'pool transaction 3 (addDevice "b") is still pending');
  h.refuses({ type: 'resizePool', dataSize: 2 ** 40 }, 'ERR_DEVICE_BUSY');
  h.refuses({ type: 'mountDevice', hash: 'a', path: '/mnt/a' }, 'ERR_DEVICE_BUSY', 'pending transaction');
  // a device the transaction does not touch can still be mounted (its events carry the committed txId)
  const ev = h.run({ type: 'mountDevice', hash: '', path: '/mnt/base' });
  assert.ok(ev.every((e) => e.txId === 2));
  h.commit();
  assert.is(h.state.txId, 3);
  assert.ok(hasDevice(h.state, 'b'));
});

test('tryDecide returns the coded error; unknown commands are programmer errors', () => {
  const h = withBase();
  const r = tryDecide(h.state, { type: 'addDevice', hash: '', baseHash: '' });
  assert.is(r.ok, false);
  if (!r.ok) assert.is(r.error.code, 'ERR_BAD_ID');
  const ok = tryDecide(h.state, { type: 'addDevice', hash: 'a', baseHash: '' });
  assert.ok(ok.ok && ok.events.length === 2);
  assert.throws(() => decide(h.state, { type: 'explode' } as never), TypeError);
  assert.throws(() => decide(h.state, null as never), TypeError);
});

test('decide never changes its input state', () => {
  const h = withBase();
  h.op({ type: 'addDevice', hash: 'a', baseHash: '' });
  const before = stateHash(h.state);
  const frozen = h.state;
  decide(frozen, { type: 'addDevice', hash: 'b', baseHash: 'a' });
  decide(frozen, { type: 'mountDevice', hash: 'a', path: '/m' });
  decide(frozen, { type: 'deleteDevice', hash: 'a' });
  assert.is(stateHash(frozen), before);
});

test.run();
