// The snapshot namespace: each command's events, the state they leave, transactions, refusals, hashing.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeRecord, GENESIS_PREV } from '@thinjournal/spec';
import {
  decide, evolve, fromPlain, toPlain, stateHash, replay, snapshotChildren, MAX_SNAPSHOT_KEY_BYTES, MAX_LABEL_BYTES, MAX_LABELS,
} from '../src/index.js';
import { withBase } from './helpers.js';

const KEY = 'default/5/extract-252941172-AC4p sha256:71d6';

test('prepare without parent: one transaction snapshotting the base image; the snapshot appears at the commit', () => {
  const h = withBase();
  const before = stateHash(h.state);
  const ev = h.run({ type: 'snapshotPrepare', key: KEY, kind: 'active', labels: { a: 'b' }, time: 1_700_000_000_123_456 });
  assert.equal(ev.map((e) => e.type), ['TransactionBegan', 'SnapshotCreated', 'SnapshotPrepared']);
  assert.ok(ev.every((e) => e.txId === 2));
  assert.equal(ev[0]!.body, { op: 'addDevice', hash: 'snap-2' });
  assert.is((ev[1]!.body as { parentHash: string }).parentHash, '');
  assert.is(h.state.snapshots.size, 0, 'pending: not yet in the namespace');
  assert.is.not(stateHash(h.state), before);
  h.commit();
  const s = h.state.snapshots.get(KEY)!;
  assert.equal(s, { key: KEY, kind: 'active', parent: null, hash: 'snap-2', labels: { a: 'b' }, created: 1_700_000_000_123_456, updated: 1_700_000_000_123_456 });
  assert.ok(h.state.devices.has('snap-2'));
  // every event encodes as a journal-spec record
  ev.forEach((e, i) => encodeRecord({ seq: i + 1, txId: e.txId, ts: 1, type: e.type, actor: 'a', reason: '', body: e.body, prev: GENESIS_PREV }));
});

test('rollback drops the namespace change with the device', () => {
  const h = withBase();
  h.run({ type: 'snapshotPrepare', key: 'k', kind: 'active', time: 1 });
  h.rollback();
  assert.is(h.state.snapshots.size, 0);
  assert.not.ok(h.state.devices.has('snap-2'));
});

test('commit, view of a committed parent, children, remove', () => {
  const h = withBase();
  h.op({ type: 'snapshotPrepare', key: 'a', kind: 'active', labels: { x: '1' }, time: 10 });
  const c = h.op({ type: 'snapshotCommit', key: 'a', name: 'base layer', labels: { y: '2' }, time: 20 });
  assert.equal(c.map((e) => e.type), ['SnapshotCommitted']);
  assert.is(c[0]!.txId, 2, 'namespace only: the committed txId');
  assert.not.ok(h.state.snapshots.has('a'));
  assert.equal(h.state.snapshots.get('base layer'), { key: 'base layer', kind: 'committed', parent: null, hash: 'snap-2', labels: { y: '2' }, created: 20, updated: 20 });
  const v = h.op({ type: 'snapshotPrepare', key: 'v', kind: 'view', parent: 'base layer', time: 30 });
  assert.is((v[1]!.body as { parentHash: string }).parentHash, 'snap-2');
  assert.is(h.state.snapshots.get('v')!.kind, 'view');
  assert.equal(snapshotChildren(h.state, 'base layer'), ['v']);
  h.refuses({ type: 'snapshotRemove', key: 'base layer' }, 'ERR_SNAPSHOT_HAS_CHILDREN', 'remove');
  h.refuses({ type: 'snapshotCommit', key: 'v', name: 'n', time: 1 }, 'ERR_SNAPSHOT_NOT_ACTIVE');
  h.refuses({ type: 'snapshotCommit', key: 'base layer', name: 'n', time: 1 }, 'ERR_SNAPSHOT_NOT_ACTIVE');
  const r = h.op({ type: 'snapshotRemove', key: 'v' });
  assert.equal(r.map((e) => e.type), ['TransactionBegan', 'DeviceDeleted', 'SnapshotRemoved']);
  assert.not.ok(h.state.snapshots.has('v'));
  assert.not.ok(h.state.devices.has('snap-3'));
  h.op({ type: 'snapshotRemove', key: 'base layer' });
  assert.is(h.state.snapshots.size, 0);
});

test('remove of a busy device: the key goes now, the device is marked for deferred deletion', () => {
  const h = withBase();
  h.op({ type: 'snapshotPrepare', key: 'a', kind: 'active', time: 10 });
  const r = h.op({ type: 'snapshotRemove', key: 'a', busy: true });
  assert.equal(r.map((e) => e.type), ['DeletionDeferred', 'SnapshotRemoved']);
  assert.ok(r.every((e) => e.txId === 2));
  assert.not.ok(h.state.snapshots.has('a'));
  assert.ok(h.state.devices.get('snap-2')!.deletionDeferred);
  // the key can be used again at once, on a new device
  h.op({ type: 'snapshotPrepare', key: 'a', kind: 'active', time: 11 });
  assert.is(h.state.snapshots.get('a')!.hash, 'snap-3');
});

test('update replaces labels and the updated time', () => {
  const h = withBase();
  h.op({ type: 'snapshotPrepare', key: 'a', kind: 'active', labels: { x: '1' }, time: 10 });
  h.op({ type: 'snapshotUpdate', key: 'a', labels: { z: '3' }, time: 15 });
  const s = h.state.snapshots.get('a')!;
  assert.equal(s.labels, { z: '3' });
  assert.is(s.created, 10);
  assert.is(s.updated, 15);
});

test('refusals: coded, nothing decided', () => {
  const h = withBase();
  h.op({ type: 'snapshotPrepare', key: 'a', kind: 'active', time: 10 });
  h.refuses({ type: 'snapshotPrepare', key: 'a', kind: 'active', time: 1 }, 'ERR_SNAPSHOT_EXISTS');
  h.refuses({ type: 'snapshotPrepare', key: 'b', kind: 'active', parent: 'nope', time: 1 }, 'ERR_SNAPSHOT_PARENT');
  h.refuses({ type: 'snapshotPrepare', key: 'b', kind: 'active', parent: 'a', time: 1 }, 'ERR_SNAPSHOT_PARENT', 'not a committed');
  h.refuses({ type: 'snapshotPrepare', key: 'b', kind: 'committed' as 'active', time: 1 }, 'ERR_SNAPSHOT_INVALID');
  h.refuses({ type: 'snapshotPrepare', key: '', kind: 'active', time: 1 }, 'ERR_SNAPSHOT_INVALID');
  h.refuses({ type: 'snapshotPrepare', key: 'x\0y', kind: 'active', time: 1 }, 'ERR_SNAPSHOT_INVALID');
  h.refuses({ type: 'snapshotPrepare', key: 'k'.repeat(MAX_SNAPSHOT_KEY_BYTES + 1), kind: 'active', time: 1 }, 'ERR_SNAPSHOT_INVALID');
  h.refuses({ type: 'snapshotPrepare', key: 'b', kind: 'active', labels: { k: 'v'.repeat(MAX_LABEL_BYTES) }, time: 1 }, 'ERR_SNAPSHOT_INVALID');
  h.refuses({ type: 'snapshotPrepare', key: 'b', kind: 'active', labels: Object.fromEntries(Array.from({ length: MAX_LABELS + 1 }, (_, i) => [`l${i}`, ''])), time: 1 }, 'ERR_SNAPSHOT_INVALID');
  h.refuses({ type: 'snapshotPrepare', key: 'b', kind: 'active', labels: Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`l${i}`, 'v'.repeat(3000)])), time: 1 }, 'ERR_SNAPSHOT_INVALID', 'together');
  h.refuses({ type: 'snapshotCommit', key: 'missing', name: 'n', time: 1 }, 'ERR_SNAPSHOT_NOT_FOUND');
  h.refuses({ type: 'snapshotCommit', key: 'a', name: 'a', time: 1 }, 'ERR_SNAPSHOT_EXISTS');
  h.refuses({ type: 'snapshotRemove', key: 'missing' }, 'ERR_SNAPSHOT_NOT_FOUND');
  h.refuses({ type: 'snapshotUpdate', key: 'missing', labels: {}, time: 1 }, 'ERR_SNAPSHOT_NOT_FOUND');
  // a pending transaction holds namespace changes back
  h.run({ type: 'snapshotPrepare', key: 'p', kind: 'active', time: 1 });
  h.refuses({ type: 'snapshotUpdate', key: 'a', labels: {}, time: 2 }, 'ERR_DEVICE_BUSY');
  h.refuses({ type: 'snapshotPrepare', key: 'q', kind: 'active', time: 2 }, 'ERR_DEVICE_BUSY');
});

test('evolve refuses namespace events that do not fit', () => {
  const h = withBase();
  h.op({ type: 'snapshotPrepare', key: 'a', kind: 'active', time: 10 });
  const T = h.state.txId;
  const bad = [
    { type: 'SnapshotPrepared', txId: T, body: { key: 'a', kind: 'active', hash: 'snap-2', labels: {}, created: 1 } },
    { type: 'SnapshotPrepared', txId: T, body: { key: 'b', kind: 'active', hash: 'snap-2', labels: {}, created: 1 } },
    { type: 'SnapshotPrepared', txId: T, body: { key: 'b', kind: 'active', hash: 'nodev', labels: {}, created: 1 } },
    { type: 'SnapshotPrepared', txId: T, body: { key: 'b', kind: 'active', parent: 'a', hash: 'snap-2', labels: {}, created: 1 } },
    { type: 'SnapshotCommitted', txId: T, body: { key: 'zz', name: 'n', labels: {}, time: 1 } },
    { type: 'SnapshotRemoved', txId: T + 1, body: { key: 'a' } },
    { type: 'SnapshotRemoved', txId: T, body: { key: 'zz' } },
  ];
  for (const e of bad) {
    try { evolve(h.state, e); assert.unreachable(JSON.stringify(e)); } catch (err) { assert.is((err as { code?: string }).code, 'ERR_EVENT_CONFLICT', JSON.stringify(e)); }
  }
});

test('state hash and checkpoint form cover the namespace; a state without snapshots hashes as before', () => {
  const h = withBase();
  const empty = stateHash(h.state);
  assert.not.ok('snapshots' in toPlain(h.state));
  assert.is(stateHash(fromPlain(JSON.parse(JSON.stringify(toPlain(h.state))))), empty);
  h.op({ type: 'snapshotPrepare', key: KEY, kind: 'active', labels: { b: '2', a: '1' }, time: 10 });
  h.op({ type: 'snapshotCommit', key: KEY, name: 'n', time: 11 });
  h.op({ type: 'snapshotPrepare', key: 'v', kind: 'view', parent: 'n', time: 12 });
  h.run({ type: 'snapshotRemove', key: 'v' }); // pending, across the checkpoint
  const round = fromPlain(JSON.parse(JSON.stringify(toPlain(h.state))));
  assert.is(stateHash(round), stateHash(h.state));
  assert.equal([...round.snapshots.keys()].sort(), ['n', 'v']);
  const other = evolve(h.state, { type: 'TransactionCommitted', txId: h.state.pending!.txId, body: {} });
  assert.equal([...other.snapshots.keys()], ['n']);
  const relabelled = evolve(other, { type: 'SnapshotLabelsUpdated', txId: other.txId, body: { key: 'n', labels: { a: '1' }, updated: 99 } });
  assert.is.not(stateHash(relabelled), stateHash(other));
  // replay of the log gives the same state
  assert.is(stateHash(replay([...h.log, { type: 'TransactionCommitted', txId: other.txId, body: {} }])), stateHash(other));
  // a checkpoint whose snapshot names a missing device is refused
  const plain = JSON.parse(JSON.stringify(toPlain(other)));
  plain.snapshots[0][3] = 'gone';
  assert.throws(() => fromPlain(plain), (e: { code?: string }) => e.code === 'ERR_CHECKPOINT_INVALID');
});

test('decide never changes the state it is given', () => {
  const h = withBase();
  const s = h.state;
  const hash = stateHash(s);
  decide(s, { type: 'snapshotPrepare', key: 'a', kind: 'active', time: 1 });
  assert.is(stateHash(s), hash);
});

test.run();
