// planRecovery, row by row of journal-spec/protocol.md §3–§4.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { planRecovery, planJson, type JournalView, type KernelView, type PendingIntent } from '../src/index.js';

const dev = (hash: string, deviceId: number, activeName: string | null = null, mounts: string[] = []) => ({ hash, deviceId, size: 1 << 30, activeName, mounts });
const J = (committedTxId: number, pending: PendingIntent | null = null, devices = [dev('base', 1), dev('a', 2)]): JournalView => ({ poolName: 'pool', pool: { dataDevice: '/dev/d', metadataDevice: '/dev/m', dataSize: 1 << 30, blockSize: 65536 }, committedTxId, pending, devices, devicePrefix: 'pool' });
/** The kernel's side: by default the journal's pool, active on the journal's devices, with the journal's geometry. */
const K = (transactionId: number | null, thinIds: number[], extra: Partial<KernelView> = {}): KernelView => ({
  poolActive: true, transactionId, thinIds, devices: ['pool'], mounts: [], suspended: [],
  poolSuspended: false,
  poolTable: extra.poolActive === false ? null : { dataDevice: '7:0', metadataDevice: '7:1', dataSize: 1 << 30, blockSize: 65536 },
  metadataGeometry: transactionId === null ? null : { blockSize: 65536, dataSize: 1 << 30 },
  poolDevices: { data: { number: '7:0', size: 1 << 30 }, metadata: { number: '7:1', size: 16 << 20 } },
  targets: {},
  ...extra,
});
const intent = (op: string, txId: number, creates: number[] = [], deletes: { deviceId: number; name: string | null }[] = []): PendingIntent => ({ txId, op, creates, deletes });

test('K = T, no intent: in sync, empty plan', () => {
  const p = planRecovery(J(5), K(5, [1, 2]));
  assert.is(p.verdict, 'in-sync');
  assert.equal(p.steps, []);
});

test('K = T+1 with intent: roll forward by appending the commit, no kernel step', () => {
  const p = planRecovery(J(5, intent('addDevice', 6, [3])), K(6, [1, 2, 3]));
  assert.is(p.verdict, 'roll-forward');
  assert.equal(p.steps.map((s) => s.kind), ['append']);
  const s = p.steps[0]!;
  assert.ok(s.kind === 'append' && s.events[0]!.type === 'TransactionCommitted' && s.events[0]!.txId === 6);
});

test('K = T with a create intent: roll back, deleting the thin id only if the kernel made it', () => {
  const made = planRecovery(J(5, intent('addDevice', 6, [3])), K(5, [1, 2, 3]));
  assert.is(made.verdict, 'roll-back');
  assert.equal(made.steps.map((s) => s.kind), ['deleteThin', 'append']);
  assert.ok(made.steps[0]!.kind === 'deleteThin' && made.steps[0]!.deviceId === 3);
  const notMade = planRecovery(J(5, intent('addDevice', 6, [3])), K(5, [1, 2]));
  assert.is(notMade.verdict, 'roll-back');
  assert.equal(notMade.steps.map((s) => s.kind), ['append']);
  const s = notMade.steps[0]!;
  assert.ok(s.kind === 'append' && s.events[0]!.type === 'TransactionRolledBack');
});

test('K = T with a delete intent: roll forward — deactivate, delete if present, set_transaction_id, commit', () => {
  const p = planRecovery(J(5, intent('deleteDevice', 6, [], [{ deviceId: 2, name: 'pool-a' }])), K(5, [1, 2]));
  assert.is(p.verdict, 'complete');
  assert.equal(p.steps.map((s) => s.kind), ['removeDevice', 'deleteThin', 'setTransactionId', 'append']);
  const st = p.steps[2]!;
  assert.ok(st.kind === 'setTransactionId' && st.from === 5 && st.to === 6);
  // the kernel already deleted it: the guards make the same plan safe (delete is guarded by thin-present)
  const again = planRecovery(J(5, intent('deleteDevice', 6, [], [{ deviceId: 2, name: 'pool-a' }])), K(5, [1]));
  assert.equal(again.steps.map((s) => s.kind), ['removeDevice', 'deleteThin', 'setTransactionId', 'append']);
  // and the kernel committed it: just the record
  const done = planRecovery(J(5, intent('deleteDevice', 6, [], [{ deviceId: 2, name: 'pool-a' }])), K(6, [1]));
  assert.is(done.verdict, 'roll-forward');
});

test('a device whose deferred removal the kernel completed is recorded as deactivated, not re-activated', () => {
  const devs = [dev('base', 1), { ...dev('a', 2, 'pool-a'), removalDeferred: true }, dev('b', 3, 'pool-b')];
  // the kernel removed pool-a at its last close; pool-b is gone too (not deferred): re-activate b only
  const p = planRecovery(J(5, null, devs), K(5, [1, 2, 3], { devices: ['pool'] }));
  assert.equal(p.steps.map((s) => s.kind), ['activateThin', 'append']);
  assert.ok(p.steps[0]!.kind === 'activateThin' && p.steps[0]!.name === 'pool-b');
  const rec = p.steps[1]!;
  assert.ok(rec.kind === 'append' && rec.events.length === 1);
  assert.equal({ type: rec.events[0]!.type, txId: rec.events[0]!.txId, body: rec.events[0]!.body }, { type: 'DeviceDeactivated', txId: 5, body: { hash: 'a', deferred: false } });
  // still open in the kernel: nothing to do yet
  const open = planRecovery(J(5, null, devs), K(5, [1, 2, 3], { devices: ['pool', 'pool-a', 'pool-b'] }));
  assert.equal(open.steps, []);
  // after a roll-forward the record carries the new transaction id
  const fwd = planRecovery(J(5, intent('addDevice', 6, [4]), devs), K(6, [1, 2, 3, 4], { devices: ['pool', 'pool-b'] }));
  const last = fwd.steps.at(-1)!;
  assert.ok(last.kind === 'append' && last.events[0]!.type === 'DeviceDeactivated' && last.events[0]!.txId === 6);
});

test('drift: K < T, K > T+1, K = T+1 without intent, unknown or missing thin ids — nothing planned, repair offered', () => {
  const cases: [JournalView, KernelView, RegExp][] = [
    [J(5), K(4, [1, 2]), /transaction id is 4/],
    [J(5, intent('addDevice', 6, [3])), K(8, [1, 2, 3]), /transaction id is 8/],
    [J(5), K(6, [1, 2]), /transaction id is 6/],
    [J(5), K(5, [1, 2, 9]), /thin ids differ/],
    [J(5), K(5, [1]), /thin ids differ/],
    [J(5, intent('addDevice', 6, [3])), K(5, [1, 2, 3, 7]), /never had/],
    [J(5, intent('addDevice', 6, [3])), K(6, [1, 2]), /differ from the intent/],
  ];
  for (const [j, k, re] of cases) {
    const p = planRecovery(j, k);
    assert.is(p.verdict, 'drift', re.source);
    assert.equal(p.steps, [], 'drift changes nothing');
    assert.match(p.reason, re);
    assert.ok(p.drift && p.repair);
  }
  const p = planRecovery(J(5), K(5, [1, 9]));
  assert.equal(p.drift!.kernelOnly, [9]);
  assert.equal(p.drift!.journalOnly, [{ hash: 'a', deviceId: 2 }]);
  assert.equal(p.repair!.map((s) => s.kind), ['deleteThin']);
});

test('after a reboot: re-activate and re-mount what the journal says, in device-id order; resume what a crash left suspended', () => {
  const j = J(5, null, [dev('base', 1), dev('b', 3, 'pool-b', ['/m/b']), dev('a', 2, 'pool-a', ['/m/a2', '/m/a1'])]);
  const p = planRecovery(j, K(5, [1, 2, 3], { devices: ['pool'] }));
  assert.is(p.verdict, 'in-sync');
  assert.equal(p.steps.map((s) => `${s.kind}:${'name' in s ? s.name : ''}${'path' in s ? s.path : ''}`), [
    'activateThin:pool-a', 'activateThin:pool-b', 'mount:pool-a/m/a1', 'mount:pool-a/m/a2', 'mount:pool-b/m/b',
  ]);
  const partly = planRecovery(j, K(5, [1, 2, 3], { devices: ['pool', 'pool-a'], mounts: ['/m/a1'] }));
  assert.equal(partly.steps.map((s) => s.kind), ['activateThin', 'mount', 'mount']);
  const rebooted = planRecovery(j, K(5, [1, 2, 3], { poolActive: false, devices: [] }));
  assert.equal(rebooted.steps.map((s) => s.kind), ['createPool', 'activateThin', 'activateThin', 'mount', 'mount', 'mount']);
  const suspended = planRecovery(J(5, intent('addDevice', 6, [3])), K(5, [1, 2, 3], { suspended: ['pool-a'] }));
  assert.equal(suspended.steps.map((s) => s.kind), ['resumeDevice', 'deleteThin', 'append']);
});

test('identity: a pool active on other devices, or metadata of another geometry, is refused with both named and no repair', () => {
  const onOther = planRecovery(J(5), K(5, [1, 2], { poolTable: { dataDevice: '7:9', metadataDevice: '7:1', dataSize: 1 << 30, blockSize: 65536 } }));
  assert.is(onOther.verdict, 'drift');
  assert.equal(onOther.repair, []);
  assert.match(onOther.drift!.refusals.join('\n'), /active on data device 7:9, not on the journal's \/dev\/d \(7:0\)/);
  const blocks = planRecovery(J(5), K(5, [1, 2], { poolActive: false, metadataGeometry: { blockSize: 131072, dataSize: 1 << 30 } }));
  assert.match(blocks.drift!.refusals.join('\n'), /data blocks of 128 KiB|131072/);
  assert.equal(blocks.repair, []);
  const small = planRecovery(J(5), K(5, [1, 2], { poolActive: false, poolDevices: { data: { number: '7:0', size: 64 << 20 }, metadata: { number: '7:1', size: 16 << 20 } } }));
  assert.match(small.drift!.refusals.join('\n'), /has 64 MiB, the journal's pool 1024 MiB/);
  const none = planRecovery(J(5), K(5, [1, 2], { poolActive: false, poolDevices: { data: null, metadata: { number: '7:1', size: 16 << 20 } } }));
  assert.match(none.drift!.refusals.join('\n'), /no block device at the journal's data device \/dev\/d/);
  assert.equal(none.steps, [], 'no createPool on a refusal');
});

test('a pool grown outside the journal: drift with an adoptDataSize repair; after a reboot the table is built at the size the metadata demands', () => {
  const active = planRecovery(J(5), K(5, [1, 2], { poolTable: { dataDevice: '7:0', metadataDevice: '7:1', dataSize: 2 ** 31, blockSize: 65536 } }));
  assert.is(active.verdict, 'drift');
  assert.match(active.reason, /data grew outside the journal: the kernel has 2048 MiB/);
  assert.equal(active.repair, [{ kind: 'adoptDataSize', dataSize: 2 ** 31, guard: 'none' }]);
  const geometry = { blockSize: 65536, dataSize: 2 ** 31 };
  const rebooted = planRecovery(J(5), K(5, [1, 2], { poolActive: false, metadataGeometry: geometry, poolDevices: { data: { number: '7:0', size: 2 ** 31 }, metadata: { number: '7:1', size: 16 << 20 } } }));
  assert.equal(rebooted.repair!.map((s) => s.kind), ['createPool', 'adoptDataSize']);
  const c = rebooted.repair![0]!;
  assert.ok(c.kind === 'createPool' && c.pool.dataSize === 2 ** 31, 'never a table shorter than the metadata demands');
  // a pending resize the kernel reached is not drift: the table is built at its size, and it rolls forward
  const resizing = { ...intent('resizePool', 6), dataSize: 2 ** 31 };
  const rf = planRecovery(J(5, resizing), K(5, [1, 2], { poolActive: false, metadataGeometry: geometry, poolDevices: { data: { number: '7:0', size: 2 ** 31 }, metadata: { number: '7:1', size: 16 << 20 } } }));
  assert.is(rf.verdict, 'complete');
  const first = rf.steps[0]!;
  assert.ok(first.kind === 'createPool' && first.pool.dataSize === 2 ** 31);
});

test('sabotage: a suspended pool, a non-thin table, a stray under the prefix — each a line and a repair', () => {
  const susp = planRecovery(J(5), K(5, [1, 2], { poolSuspended: true }));
  assert.is(susp.verdict, 'drift');
  assert.equal(susp.repair, [{ kind: 'resumeDevice', name: 'pool', guard: 'suspended' }]);
  const j = J(5, null, [dev('base', 1), dev('a', 2, 'pool-a', ['/m/a'])]);
  const broken = planRecovery(j, K(5, [1, 2], { devices: ['pool', 'pool-a'], targets: { 'pool-a': 'error' } }));
  assert.match(broken.drift!.findings.join('\n'), /pool-a \("a"\) has a table of type error/);
  assert.equal(broken.repair!.map((s) => s.kind), ['removeDevice']);
  const mounted = planRecovery(j, K(5, [1, 2], { devices: ['pool', 'pool-a'], mounts: ['/m/a'], targets: { 'pool-a': 'error' } }));
  assert.match(mounted.drift!.refusals.join('\n'), /still mounted at \/m\/a/);
  assert.equal(mounted.repair, []);
  const stray = planRecovery(j, K(5, [1, 2], { devices: ['pool', 'pool-a', 'pool-x'], targets: { 'pool-a': 'thin', 'pool-x': 'zero' } }));
  assert.match(stray.reason, /pool-x carries the journal's prefix but the journal never activated it/);
  assert.equal(stray.repair, [{ kind: 'removeDevice', name: 'pool-x', guard: 'device-present' }]);
  const pendingBase = planRecovery(J(5, { ...intent('createBaseImage', 6, [1]), activates: ['pool-base'] }, []), K(5, [], { devices: ['pool', 'pool-base'], targets: { 'pool-base': 'thin' } }));
  assert.is.not(pendingBase.verdict, 'drift', 'what a pending intent activates is not a stray');
});

test('deterministic: same inputs → byte-identical plan, whatever the input order', () => {
  const j1 = J(5, intent('deleteDevice', 6, [], [{ deviceId: 2, name: 'pool-a' }]), [dev('a', 2, 'pool-a'), dev('base', 1), dev('c', 4, 'pool-c', ['/y', '/x'])]);
  const j2 = { ...j1, devices: [...j1.devices].reverse() };
  const k1 = K(5, [4, 2, 1]);
  const k2 = K(5, [1, 2, 4]);
  assert.is(planJson(planRecovery(j1, k1)), planJson(planRecovery(j2, k2)));
  assert.is(planJson(planRecovery(j1, k1)), planJson(planRecovery(j1, k1)));
});

test.run();
