// evolve: total over the catalogue, conflicts as ERR_EVENT_CONFLICT with the state unchanged, transactions,
// the in-place Projection, the canonical hash and the checkpoint form.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { EVENT_TYPES, packr, decodeRecord, type JournalEvent } from '@thinjournal/spec';
import {
  decide, evolve, initialState, Projection, replay, stateHash, toPlain, fromPlain, TRANSACTIONAL_EVENTS, type State, type EventLike,
} from '../src/index.js';
import { withBase, UUID } from './helpers.js';

const vectors = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../journal-spec/vectors/records.json');
const G10 = 10 * 1024 ** 3;

function conflicts(s: State, e: EventLike, fragment: string): void {
  const hash = stateHash(s);
  try {
    evolve(s, e);
  } catch (err) {
    assert.is((err as { code?: string }).code, 'ERR_EVENT_CONFLICT', (err as Error).message);
    assert.ok((err as Error).message.includes(fragment), `"${fragment}" in: ${(err as Error).message}`);
    assert.is(stateHash(s), hash);
    // the in-place projection refuses it too, and stays as it was
    const p = new Projection(s);
    assert.throws(() => p.apply(e));
    assert.is(stateHash(p.state), hash);
    return;
  }
  assert.unreachable(`${e.type} applied`);
}

test('the journal-spec record vectors replay through evolve (every event type, commit, rollback)', () => {
  const { records } = JSON.parse(readFileSync(vectors, 'utf8')) as { records: { bytes: string }[] };
  const recs = records.map((r) => decodeRecord(Buffer.from(r.bytes, 'hex')));
  const seen = new Set(recs.map((r) => r.type));
  for (const t of EVENT_TYPES) assert.ok(seen.has(t), `vector covers ${t}`);
  let s = initialState;
  for (const r of recs.slice(0, 24)) s = evolve(s, r);
  assert.is(s.txId, 5);
  assert.is(s.pending, null);
  assert.equal([...s.devices.keys()], ['']);
  assert.is(s.nextDeviceId, 3, 'the rolled-back create of id 3 kept the cursor');
  assert.is(s.pool!.dataSize, 214748364800);
  // record 24: the loop devices re-attached after a reboot
  assert.equal([s.pool!.dataDevice, s.pool!.metadataDevice], ['/dev/loop2', '/dev/loop3']);
  assert.is(replay(recs.slice(0, 24)).txId, 5);
  assert.is(stateHash(replay(recs.slice(0, 24))), stateHash(s));
  // records 25…27: a repair's audit trail (no state change); 28…41: the snapshot namespace (a snapshot
  // committed and relabelled, a view of it prepared and removed)
  for (const r of recs.slice(24)) s = evolve(s, r);
  assert.is(s.txId, 8);
  assert.equal([...s.snapshots.keys()], ['sha256:71d6']);
  assert.equal(s.snapshots.get('sha256:71d6')!.labels, { 'containerd.io/gc.root': '2025-11-24' });
  assert.equal([...s.devices.keys()].sort(), ['', 'snap-6']);
  assert.is(stateHash(replay(recs)), stateHash(s));
});

test('a transaction: intent kept aside, applied on commit, dropped on rollback', () => {
  const h = withBase();
  const s0 = h.state;
  const began: JournalEvent = { type: 'TransactionBegan', txId: 2, body: { op: 'addDevice', hash: 'a' } };
  const snap: JournalEvent = { type: 'SnapshotCreated', txId: 2, body: { hash: 'a', deviceId: 2, parentHash: '', parentDeviceId: 1, size: G10 } };
  const s1 = evolve(evolve(s0, began), snap);
  assert.is(s1.txId, 1);
  assert.not.ok(s1.devices.has('a'));
  assert.equal(s1.pending, { txId: 2, op: 'addDevice', hash: 'a', events: [snap] });
  const committed = evolve(s1, { type: 'TransactionCommitted', txId: 2, body: {} });
  assert.is(committed.txId, 2);
  assert.ok(committed.devices.has('a'));
  assert.is(committed.pending, null);
  const rolled = evolve(s1, { type: 'TransactionRolledBack', txId: 2, body: { reason: 'x' } });
  assert.is(rolled.txId, 1);
  assert.not.ok(rolled.devices.has('a'));
  assert.is(rolled.pending, null);
  // Rollback undoes everything except the id cursor, by design.
  assert.equal({ ...toPlain(rolled), nextDeviceId: 0 }, { ...toPlain(s0), nextDeviceId: 0 });
  assert.is(rolled.nextDeviceId, 2);
  assert.is(s0.nextDeviceId, 1);
  // inputs untouched
  assert.is(s0.devices.size, 1);
  assert.is(s1.pending!.events.length, 1);
});

test('a transaction may hold several pool-metadata events; later ones see earlier ones', () => {
  const h = withBase();
  const evs: JournalEvent[] = [
    { type: 'TransactionBegan', txId: 2, body: { op: 'batch' } },
    { type: 'SnapshotCreated', txId: 2, body: { hash: 'a', deviceId: 2, parentHash: '', parentDeviceId: 1, size: G10 } },
    { type: 'SnapshotCreated', txId: 2, body: { hash: 'b', deviceId: 3, parentHash: 'a', parentDeviceId: 2, size: G10 } },
  ];
  let s = h.state;
  for (const e of evs) s = evolve(s, e);
  conflicts(s, { type: 'DeviceDeleted', txId: 2, body: { hash: 'a', deviceId: 2 } }, 'has 1 snapshot(s)');
  s = evolve(s, { type: 'DeviceDeleted', txId: 2, body: { hash: 'b', deviceId: 3 } });
  conflicts(s, { type: 'DeviceCreated', txId: 2, body: { hash: 'c', deviceId: 2, size: G10 } }, 'belongs to "a"');
  s = evolve(s, { type: 'DeviceCreated', txId: 2, body: { hash: 'c', deviceId: 3, size: G10 } });
  s = evolve(s, { type: 'TransactionCommitted', txId: 2, body: {} });
  assert.equal([...s.devices.keys()].sort(), ['', 'a', 'c']);
  assert.equal([...s.deviceIds.entries()].sort((x, y) => x[0] - y[0]), [[1, ''], [2, 'a'], [3, 'c']]);
  assert.is(s.childCounts.get(''), 1);
  assert.is(s.childCounts.get('a'), undefined);
});

test('conflicts: each refused with ERR_EVENT_CONFLICT and the state unchanged', () => {
  const h = withBase();
  h.op({ type: 'addDevice', hash: 'a', baseHash: '' });
  h.op({ type: 'mountDevice', hash: 'a', path: '/mnt/a' });
  const s = h.state; // txId 2, "a" active and mounted at /mnt/a
  const T = s.txId;
  conflicts(initialState, { type: 'TransactionBegan', txId: 1, body: { op: 'x' } }, 'not initialised');
  conflicts(initialState, { type: 'DeviceMounted', txId: 0, body: { hash: 'a', path: '/m' } }, 'not initialised');
  conflicts(initialState, { type: 'PoolInitialised', txId: 0, body: { poolName: 'p', dataDevice: '', metadataDevice: '', loopback: true, dataSize: 1 << 20, metadataSize: 1 << 20, blockSize: 1000 } }, 'block size');
  conflicts(s, { type: 'PoolInitialised', txId: 0, body: { poolName: 'p', dataDevice: '', metadataDevice: '', loopback: true, dataSize: 1 << 20, metadataSize: 1 << 20, blockSize: 65536 } }, 'already initialised');
  conflicts(s, { type: 'TransactionBegan', txId: T + 2, body: { op: 'x' } }, `expected txId ${T + 1}`);
  conflicts(s, { type: 'TransactionBegan', txId: T, body: { op: 'x' } }, `expected txId ${T + 1}`);
  conflicts(s, { type: 'TransactionCommitted', txId: T + 1, body: {} }, 'no transaction is pending');
  conflicts(s, { type: 'TransactionRolledBack', txId: T + 1, body: { reason: 'r' } }, 'no transaction is pending');
  conflicts(s, { type: 'DeviceCreated', txId: T + 1, body: { hash: 'b', deviceId: 9, size: G10 } }, 'must follow a TransactionBegan');
  conflicts(s, { type: 'PoolResized', txId: T + 1, body: { dataSize: 2 ** 50 } }, 'must follow a TransactionBegan');
  const p = evolve(s, { type: 'TransactionBegan', txId: T + 1, body: { op: 'x' } });
  conflicts(p, { type: 'TransactionBegan', txId: T + 1, body: { op: 'y' } }, 'still pending');
  conflicts(p, { type: 'TransactionCommitted', txId: T + 2, body: {} }, `pending transaction is ${T + 1}`);
  conflicts(p, { type: 'DeviceCreated', txId: T, body: { hash: 'b', deviceId: 9, size: G10 } }, `pending transaction is ${T + 1}`);
  conflicts(p, { type: 'DeviceCreated', txId: T + 1, body: { hash: 'a', deviceId: 9, size: G10 } }, '"a" exists');
  conflicts(p, { type: 'DeviceCreated', txId: T + 1, body: { hash: 'b', deviceId: 1, size: G10 } }, 'belongs to ""');
  conflicts(p, { type: 'DeviceCreated', txId: T + 1, body: { hash: 'b', deviceId: 2 ** 24, size: G10 } }, 'not 24-bit');
  conflicts(p, { type: 'BaseImageCreated', txId: T + 1, body: { hash: 'b', deviceId: 9, size: G10, fs: 'xfs', uuid: UUID } }, 'base image exists');
  conflicts(p, { type: 'SnapshotCreated', txId: T + 1, body: { hash: 'b', deviceId: 9, parentHash: 'zz', parentDeviceId: 1, size: G10 } }, 'no parent');
  conflicts(p, { type: 'SnapshotCreated', txId: T + 1, body: { hash: 'b', deviceId: 9, parentHash: '', parentDeviceId: 5, size: G10 } }, 'has id 1');
  conflicts(p, { type: 'SnapshotCreated', txId: T + 1, body: { hash: 'b', deviceId: 9, parentHash: '', parentDeviceId: 1, size: 512 } }, 'smaller than the parent');
  conflicts(p, { type: 'DeviceDeleted', txId: T + 1, body: { hash: 'a', deviceId: 2 } }, 'is active');
  conflicts(p, { type: 'DeviceDeleted', txId: T + 1, body: { hash: 'a', deviceId: 7 } }, 'has id 2');
  conflicts(p, { type: 'DeviceDeleted', txId: T + 1, body: { hash: 'zz', deviceId: 7 } }, 'no device');
  conflicts(p, { type: 'DeviceDeleted', txId: T + 1, body: { hash: '', deviceId: 1 } }, 'has 1 snapshot(s)');
  conflicts(p, { type: 'PoolResized', txId: T + 1, body: { dataSize: 1 << 20 } }, 'smaller');
  // outside transactions
  conflicts(s, { type: 'DeviceMounted', txId: T - 1, body: { hash: 'a', path: '/m' } }, `committed txId ${T}`);
  conflicts(s, { type: 'DeviceMounted', txId: T, body: { hash: 'zz', path: '/m' } }, 'no device');
  conflicts(s, { type: 'DeviceMounted', txId: T, body: { hash: 'a', path: '/mnt/a' } }, 'already mounted');
  conflicts(s, { type: 'DeviceMounted', txId: T, body: { hash: '', path: '/m' } }, 'not active');
  conflicts(s, { type: 'DeviceUnmounted', txId: T, body: { hash: 'a', path: '/m' } }, 'not mounted at /m');
  conflicts(s, { type: 'DeviceDeactivated', txId: T, body: { hash: 'a', deferred: false } }, 'is mounted');
  conflicts(s, { type: 'DeviceDeactivated', txId: T, body: { hash: '', deferred: false } }, 'not active');
  conflicts(s, { type: 'DeviceActivated', txId: T, body: { hash: 'a', deviceId: 2, name: 'n', size: G10 } }, 'already active');
  conflicts(s, { type: 'DeviceActivated', txId: T, body: { hash: '', deviceId: 3, name: 'n', size: G10 } }, 'has id 1');
  conflicts(s, { type: 'DeviceActivated', txId: T, body: { hash: '', deviceId: 1, name: 'n', size: 512 } }, 'has size');
  conflicts(s, { type: 'DeviceResized', txId: T, body: { hash: 'a', size: G10 } }, 'does not grow');
  conflicts(s, { type: 'DeletionDeferred', txId: T, body: { hash: 'a', deviceId: 5 } }, 'has id 2');
  conflicts(s, { type: 'Checkpoint', txId: T + 1, body: { atSeq: 3, stateHash: 'x' } }, `committed txId ${T}`);
  // a device the pending transaction deletes is frozen for other events
  let q = withBase();
  q.op({ type: 'addDevice', hash: 'b', baseHash: '' });
  q.run({ type: 'deleteDevice', hash: 'b' });
  conflicts(q.state, { type: 'DeviceActivated', txId: q.state.txId, body: { hash: 'b', deviceId: 2, name: 'n', size: G10 } }, 'part of pending transaction');
  // a device awaiting deferred deletion cannot be activated, mounted or resized
  q = withBase();
  q.op({ type: 'addDevice', hash: 'b', baseHash: '' });
  q.run({ type: 'deleteDevice', hash: 'b', busy: true, deferredDeletion: true });
  conflicts(q.state, { type: 'DeviceActivated', txId: q.state.txId, body: { hash: 'b', deviceId: 2, name: 'n', size: G10 } }, 'awaits deferred deletion');
  conflicts(q.state, { type: 'DeviceResized', txId: q.state.txId, body: { hash: 'b', size: 2 * G10 } }, 'awaits deferred deletion');
  conflicts(q.state, { type: 'DeletionDeferred', txId: q.state.txId, body: { hash: 'b', deviceId: 2 } }, 'already awaits');
  const began = evolve(q.state, { type: 'TransactionBegan', txId: q.state.txId + 1, body: { op: 'x' } });
  conflicts(began, { type: 'SnapshotCreated', txId: q.state.txId + 1, body: { hash: 'c', deviceId: 9, parentHash: 'b', parentDeviceId: 2, size: G10 } }, 'awaits deferred deletion');
});

test('evolve is total: every catalogue event type has a rule, and the set of transactional ones is fixed', () => {
  assert.equal([...TRANSACTIONAL_EVENTS].sort(), ['BaseImageCreated', 'DeviceCreated', 'DeviceDeleted', 'PoolResized', 'SnapshotCreated']);
  // An unknown type (not in the catalogue) is a conflict, never ignored.
  const h = withBase();
  conflicts(h.state, { type: 'DeviceTeleported', txId: 1, body: { hash: '' } }, 'unknown event type');
});

test('Projection applies in place with the same result as evolve; snapshots stay immutable', () => {
  const h = withBase(['dm.use_deferred_removal=true', 'dm.use_deferred_deletion=true']);
  h.op({ type: 'addDevice', hash: 'a', baseHash: '' });
  h.op({ type: 'addDevice', hash: 'b', baseHash: 'a', size: 2 * G10 });
  h.op({ type: 'mountDevice', hash: 'b', path: '/mnt/b' });
  h.op({ type: 'unmountDevice', hash: 'b', path: '/mnt/b', openCount: 1 });
  h.op({ type: 'deleteDevice', hash: 'b' });
  h.run({ type: 'createDevice', hash: 'scratch', size: 1 << 30 });
  const p = new Projection();
  const snaps: [State, string][] = [];
  for (const e of h.log) {
    p.apply(e);
    const snap = p.state;
    snaps.push([snap, stateHash(snap)]);
  }
  assert.is(stateHash(p.state), stateHash(h.state));
  assert.is(p.eventsApplied, h.log.length);
  // every snapshot still hashes as it did when taken
  for (const [snap, hash] of snaps) assert.is(stateHash(snap), hash);
  assert.is(stateHash(replay(h.log)), stateHash(h.state));
});

test('Projection.peek decides on the live state without a snapshot; earlier snapshots stay as they were', () => {
  const h = withBase();
  const p = new Projection(h.state);
  const snap = p.state;
  const snapHash = stateHash(snap);
  for (const hash of ['a', 'b', 'c']) {
    const events = p.peek((s) => decide(s, { type: 'addDevice', hash, baseHash: '' }));
    p.applyAll(events);
    p.apply({ type: 'TransactionCommitted', txId: events[0]!.txId, body: {} });
    const mount = p.peek((s) => decide(s, { type: 'mountDevice', hash, path: `/mnt/${hash}` }));
    p.applyAll(mount);
  }
  assert.is(stateHash(snap), snapHash);
  assert.is(p.state.devices.size, 4);
  assert.is(p.state.txId, 4);
  assert.is(p.peek((s) => s.devices.get('c')!.mounts[0]!.path), '/mnt/c');
});

test('stateHash: same state, any insertion or key order → same hash; any field change → different hash', () => {
  const a = withBase();
  a.op({ type: 'addDevice', hash: 'x', baseHash: '' });
  a.op({ type: 'addDevice', hash: 'y', baseHash: '' });
  const plain = toPlain(a.state);
  // devices in reverse order, every object's keys reversed
  const reverseKeys = (o: unknown): unknown => {
    if (Array.isArray(o)) return o.map(reverseKeys);
    if (o && typeof o === 'object') return Object.fromEntries(Object.entries(o).reverse().map(([k, v]) => [k, reverseKeys(v)]));
    return o;
  };
  const shuffled = reverseKeys({ ...plain, devices: [...plain.devices].reverse() });
  assert.is(stateHash(fromPlain(shuffled)), stateHash(a.state));
  assert.is(stateHash(a.state), stateHash(fromPlain(JSON.parse(JSON.stringify(plain)))));
  const changed = (f: (p: any) => any) => stateHash(fromPlain(f(JSON.parse(JSON.stringify(plain)))));
  const h0 = stateHash(a.state);
  assert.is.not(changed((p) => ({ ...p, txId: p.txId + 1 })), h0);
  assert.is.not(changed((p) => ({ ...p, nextDeviceId: 99 })), h0);
  assert.is.not(changed((p) => ({ ...p, devices: p.devices.map((d: any) => (d.hash === 'x' ? { ...d, size: d.size + 512 } : d)) })), h0);
  assert.is.not(changed((p) => ({ ...p, pool: { ...p.pool, options: { ...p.pool.options, 'dm.fs': 'ext4' } } })), h0);
  assert.match(h0, /^[0-9a-f]{64}$/);
  // event body key order does not matter either
  const e1 = { type: 'TransactionBegan', txId: 4, body: { op: 'addDevice', hash: 'z' } };
  const e2 = { type: 'TransactionBegan', txId: 4, body: { hash: 'z', op: 'addDevice' } };
  assert.is(stateHash(evolve(a.state, e1)), stateHash(evolve(a.state, e2)));
});

test('checkpoint form: plain data, msgpack round trip, pending transaction included; bad data refused', () => {
  const h = withBase();
  h.op({ type: 'addDevice', hash: 'a', baseHash: '' });
  h.op({ type: 'mountDevice', hash: 'a', path: '/mnt/a' });
  h.run({ type: 'addDevice', hash: 'b', baseHash: 'a' }); // pending
  const bytes = packr.pack(toPlain(h.state));
  const back = fromPlain(packr.unpack(bytes));
  assert.is(stateHash(back), stateHash(h.state));
  assert.is(back.pending!.txId, h.state.pending!.txId);
  // the restored state continues exactly like the original
  const commit = { type: 'TransactionCommitted', txId: h.state.pending!.txId, body: {} };
  assert.is(stateHash(evolve(back, commit)), stateHash(evolve(h.state, commit)));
  for (const bad of [null, 7, { v: 2, devices: [] }, { ...toPlain(h.state), devices: [{ hash: 'q' }] },
    { ...toPlain(h.state), devices: [...toPlain(h.state).devices, { ...toPlain(h.state).devices[0], hash: 'dup' }] },
    { ...toPlain(h.state), pending: { txId: 99, op: 'x', hash: null, events: [] } }]) {
    try { fromPlain(bad); assert.unreachable(JSON.stringify(bad)); } catch (e) { assert.is((e as { code?: string }).code, 'ERR_CHECKPOINT_INVALID', (e as Error).message); }
  }
});

test.run();
