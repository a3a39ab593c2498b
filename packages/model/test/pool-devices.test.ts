// PoolDevicesAttached and attachPoolDevices: a pool's devices at new paths (a loopback pool's files re-attached
// on other loop devices after a reboot). Not a transaction; allowed while one is pending.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeRecord, decodeRecord, GENESIS_PREV, type JournalEvent } from '@thinjournal/spec';
import {
  decide, evolve, initialState, Projection, replay, stateHash, toPlain, fromPlain, GIB, type State, type EventLike,
} from '../src/index.js';
import { Harness, withBase, initCommand } from './helpers.js';

const G10 = 10 * GIB;
const FILES = { dataFile: '/var/lib/docker/devicemapper/devmapper/data', metadataFile: '/var/lib/docker/devicemapper/devmapper/metadata' };

function attached(txId: number, dataDevice = '/dev/loop2', metadataDevice = '/dev/loop3', files: object = FILES): JournalEvent {
  return { type: 'PoolDevicesAttached', txId, body: { dataDevice, metadataDevice, ...files } } as JournalEvent;
}

/** evolve and the in-place Projection must agree. */
function both(s: State, e: EventLike): State {
  const next = evolve(s, e);
  const p = new Projection(s);
  p.apply(e);
  assert.is(stateHash(p.state), stateHash(next), 'Projection = evolve');
  return next;
}

function conflicts(s: State, e: EventLike, fragment: string): void {
  const hash = stateHash(s);
  const plain = JSON.stringify(toPlain(s));
  try {
    evolve(s, e);
    assert.unreachable(`${e.type} applied`);
  } catch (err) {
    assert.is((err as { code?: string }).code, 'ERR_EVENT_CONFLICT', (err as Error).message);
    assert.ok((err as Error).message.includes(fragment), `"${fragment}" in: ${(err as Error).message}`);
  }
  assert.is(stateHash(s), hash);
  assert.is(JSON.stringify(toPlain(s)), plain);
  const p = new Projection(s);
  assert.throws(() => p.apply(e));
  assert.is(stateHash(p.state), hash);
}

/** A pool (loop0/loop1) with the base image, "a" mounted at /mnt/a: txId 2. */
function busyPool(): Harness {
  const h = withBase();
  h.op({ type: 'addDevice', hash: 'a', baseHash: '' });
  h.op({ type: 'mountDevice', hash: 'a', path: '/mnt/a' });
  return h;
}

test('evolve: PoolDevicesAttached sets the pool\'s devices and nothing else', () => {
  const h = busyPool();
  const s0 = h.state;
  assert.is(s0.pool!.dataDevice, '/dev/loop0');
  const s1 = both(s0, attached(s0.txId));
  assert.equal(s1.pool, { ...s0.pool!, dataDevice: '/dev/loop2', metadataDevice: '/dev/loop3' });
  assert.ok(Object.isFrozen(s1.pool));
  // everything but the pool is as it was
  const { pool: p1, ...rest1 } = toPlain(s1);
  const { pool: p0, ...rest0 } = toPlain(s0);
  assert.equal(rest1, rest0);
  assert.equal({ ...p1, dataDevice: '', metadataDevice: '' }, { ...p0, dataDevice: '', metadataDevice: '' });
  assert.is(s1.txId, s0.txId);
  assert.is(s1.devices, s0.devices, 'the device map is shared, not copied');
  // the hash covers the devices; the input is untouched
  assert.is.not(stateHash(s1), stateHash(s0));
  assert.is(s0.pool!.dataDevice, '/dev/loop0');
  // the files are for audit only: with or without them, the same state
  assert.is(stateHash(evolve(s0, attached(s0.txId, '/dev/loop2', '/dev/loop3', {}))), stateHash(s1));
  // the checkpoint form carries the new paths
  assert.is(stateHash(fromPlain(JSON.parse(JSON.stringify(toPlain(s1))))), stateHash(s1));
  assert.is(fromPlain(toPlain(s1)).pool!.dataDevice, '/dev/loop2');
  // the same paths again apply (nothing changes); decide would not have emitted it
  assert.is(stateHash(evolve(s1, attached(s1.txId))), stateHash(s1));
});

test('evolve: allowed while a transaction is pending, which then commits (or rolls back) as before', () => {
  const h = busyPool();
  const T = h.state.txId;
  h.run({ type: 'addDevice', hash: 'b', baseHash: 'a' });
  const pending = h.state;
  assert.is(pending.pending!.txId, T + 1);
  // the event carries the committed txId, not the pending transaction's
  conflicts(pending, attached(T + 1), `expected the committed txId ${T}`);
  const s1 = both(pending, attached(T));
  assert.is(s1.pool!.dataDevice, '/dev/loop2');
  assert.is(s1.txId, T);
  assert.equal(s1.pending, pending.pending, 'the pending transaction is untouched');
  const committed = both(s1, { type: 'TransactionCommitted', txId: T + 1, body: {} });
  assert.is(committed.txId, T + 1);
  assert.ok(committed.devices.has('b'));
  assert.is(committed.devices.get('b')!.parentHash, 'a');
  assert.is(committed.pool!.dataDevice, '/dev/loop2');
  assert.is(committed.pool!.metadataDevice, '/dev/loop3');
  const rolled = both(s1, { type: 'TransactionRolledBack', txId: T + 1, body: { reason: 'x' } });
  assert.is(rolled.txId, T);
  assert.not.ok(rolled.devices.has('b'));
  assert.is(rolled.pool!.dataDevice, '/dev/loop2');
  // the pending state round-trips through the checkpoint form with the new paths
  const back = fromPlain(JSON.parse(JSON.stringify(toPlain(s1))));
  assert.is(stateHash(back), stateHash(s1));
  assert.is(stateHash(evolve(back, { type: 'TransactionCommitted', txId: T + 1, body: {} })), stateHash(committed));
});

test('evolve: a pending PoolResized commits with the new sizes and the new devices', () => {
  const h = busyPool();
  const T = h.state.txId;
  h.run({ type: 'resizePool', dataSize: 2 * h.state.pool!.dataSize });
  const size = 2 * h.state.pool!.dataSize;
  // in place (the Projection keeps the transaction's own copy of the pool) and through evolve
  const p = new Projection(h.state);
  p.apply(attached(T));
  p.apply({ type: 'TransactionCommitted', txId: T + 1, body: {} });
  const s = evolve(evolve(h.state, attached(T)), { type: 'TransactionCommitted', txId: T + 1, body: {} });
  for (const st of [p.state, s]) {
    assert.is(st.txId, T + 1);
    assert.is(st.pool!.dataSize, size);
    assert.is(st.pool!.dataDevice, '/dev/loop2');
    assert.is(st.pool!.metadataDevice, '/dev/loop3');
  }
  assert.is(stateHash(p.state), stateHash(s));
});

test('evolve: refused without a pool and with a txId other than the committed one, the state unchanged', () => {
  conflicts(initialState, attached(0), 'the pool is not initialised');
  const h = busyPool();
  const T = h.state.txId;
  conflicts(h.state, attached(T - 1), `expected the committed txId ${T}`);
  conflicts(h.state, attached(T + 1), `expected the committed txId ${T}`);
  // a pool initialised but not yet used: txId 0
  const fresh = new Harness();
  fresh.op(initCommand());
  conflicts(fresh.state, attached(1), 'expected the committed txId 0');
  assert.is(both(fresh.state, attached(0)).pool!.dataDevice, '/dev/loop2');
});

test('decide attachPoolDevices: nothing when unchanged, else one PoolDevicesAttached at the committed txId', () => {
  const h = busyPool();
  const T = h.state.txId;
  assert.equal(decide(h.state, { type: 'attachPoolDevices', dataDevice: '/dev/loop0', metadataDevice: '/dev/loop1' }), []);
  assert.equal(decide(h.state, { type: 'attachPoolDevices', dataDevice: '/dev/loop0', metadataDevice: '/dev/loop1', ...FILES }), []);
  // one device moved is enough; the body has both, and the files only when given
  assert.equal(decide(h.state, { type: 'attachPoolDevices', dataDevice: '/dev/loop0', metadataDevice: '/dev/loop7' }),
    [{ type: 'PoolDevicesAttached', txId: T, body: { dataDevice: '/dev/loop0', metadataDevice: '/dev/loop7' } }]);
  assert.equal(decide(h.state, { type: 'attachPoolDevices', dataDevice: '/dev/loop2', metadataDevice: '/dev/loop3', dataFile: FILES.dataFile }),
    [{ type: 'PoolDevicesAttached', txId: T, body: { dataDevice: '/dev/loop2', metadataDevice: '/dev/loop3', dataFile: FILES.dataFile } }]);
  const ev = h.run({ type: 'attachPoolDevices', dataDevice: '/dev/loop2', metadataDevice: '/dev/loop3', ...FILES });
  assert.equal(ev, [attached(T)]);
  assert.is(h.state.txId, T);
  assert.is(h.state.pool!.dataDevice, '/dev/loop2');
  // now those are the state's: nothing more to record
  assert.equal(decide(h.state, { type: 'attachPoolDevices', dataDevice: '/dev/loop2', metadataDevice: '/dev/loop3', ...FILES }), []);
  // the decided event is a valid journal record (spec schema, canonical field order)
  const bytes = encodeRecord({ seq: 1, txId: ev[0]!.txId, ts: 0, type: ev[0]!.type, actor: 'dockerd', reason: 'reboot', body: ev[0]!.body, prev: GENESIS_PREV });
  assert.equal(Object.keys(decodeRecord(bytes).body), ['dataDevice', 'metadataDevice', 'dataFile', 'metadataFile']);
});

test('decide attachPoolDevices: allowed while a transaction is pending (committed txId), which then commits', () => {
  const h = busyPool();
  const T = h.state.txId;
  h.run({ type: 'addDevice', hash: 'b', baseHash: '' });
  h.refuses({ type: 'addDevice', hash: 'c', baseHash: '' }, 'ERR_DEVICE_BUSY', 'still pending');
  const ev = h.run({ type: 'attachPoolDevices', dataDevice: '/dev/loop4', metadataDevice: '/dev/loop5' });
  assert.equal(ev, [{ type: 'PoolDevicesAttached', txId: T, body: { dataDevice: '/dev/loop4', metadataDevice: '/dev/loop5' } }]);
  assert.is(h.state.pending!.txId, T + 1);
  h.commit();
  assert.is(h.state.txId, T + 1);
  assert.ok(h.state.devices.has('b'));
  assert.is(h.state.pool!.dataDevice, '/dev/loop4');
});

test('decide attachPoolDevices: refusals (no pool, bad device texts), each with the state unchanged', () => {
  new Harness().refuses({ type: 'attachPoolDevices', dataDevice: '/dev/loop2', metadataDevice: '/dev/loop3' }, 'ERR_POOL_NOT_INITIALISED');
  const h = busyPool();
  const ok = { type: 'attachPoolDevices', dataDevice: '/dev/loop2', metadataDevice: '/dev/loop3' } as const;
  h.refuses({ ...ok, dataDevice: '/dev/loop\n2' }, 'ERR_BAD_ID', 'data device');
  h.refuses({ ...ok, metadataDevice: '/dev/\u0000loop3' }, 'ERR_BAD_ID', 'metadata device');
  h.refuses({ ...ok, dataDevice: 7 as never }, 'ERR_BAD_ID', 'is not a string');
  h.refuses({ ...ok, metadataDevice: undefined as never }, 'ERR_BAD_ID', 'is not a string');
  h.refuses({ ...ok, dataDevice: '/x'.repeat(2049) }, 'ERR_BAD_ID', 'longer than 4096 bytes');
  h.refuses({ ...ok, dataDevice: '/dev/\ud800' }, 'ERR_BAD_ID', 'lone surrogate');
  h.refuses({ ...ok, dataFile: '/var/\u0007data' }, 'ERR_BAD_ID', 'data file');
  h.refuses({ ...ok, metadataFile: 1 as never }, 'ERR_BAD_ID', 'metadata file');
  // bad texts are refused even when the devices are unchanged
  h.refuses({ ...ok, dataDevice: '/dev/loop0', metadataDevice: '/dev/loop1', dataFile: 'a\tb' }, 'ERR_BAD_ID', 'data file');
});

test('replay from empty of a journal with PoolDevicesAttached = the incremental state (evolve, Projection, checkpoint)', () => {
  const h = new Harness();
  h.op(initCommand());
  h.op({ type: 'createBaseImage', size: G10, fs: 'xfs', uuid: '6f1c2a5e-1b8e-4c61-9a49-2f8f9ad3c0b7' });
  h.op({ type: 'addDevice', hash: 'a', baseHash: '' });
  h.op({ type: 'mountDevice', hash: 'a', path: '/mnt/a' });
  h.run({ type: 'attachPoolDevices', dataDevice: '/dev/loop2', metadataDevice: '/dev/loop3', ...FILES }); // a reboot
  h.run({ type: 'addDevice', hash: 'b', baseHash: 'a' });
  h.run({ type: 'attachPoolDevices', dataDevice: '/dev/loop4', metadataDevice: '/dev/loop3' }); // another, mid-transaction
  h.commit();
  h.op({ type: 'resizePool', dataSize: 2 * h.state.pool!.dataSize });
  assert.equal(h.log.filter((e) => e.type === 'PoolDevicesAttached').length, 2);
  const want = stateHash(h.state);
  assert.is(h.state.pool!.dataDevice, '/dev/loop4');
  assert.is(h.state.pool!.metadataDevice, '/dev/loop3');
  assert.is(stateHash(replay(h.log)), want);
  assert.is(stateHash(h.log.reduce(evolve, initialState)), want);
  // through a checkpoint taken at every point of the log
  for (let cut = 0; cut <= h.log.length; cut++) {
    const mid = fromPlain(JSON.parse(JSON.stringify(toPlain(replay(h.log.slice(0, cut))))));
    assert.is(stateHash(replay(h.log.slice(cut), mid)), want, `cut at ${cut}`);
  }
});

test.run();
