#!/usr/bin/env node
// Regenerates journal-spec/vectors/*.json from the reference codec (packages/spec, built).
// Vectors are normative once committed: a change to them is a format change and needs a new format version.
// Vectors for an addition (format.md §9) are appended; every earlier vector must come out byte-identical.
// Usage: node journal-spec/tools/generate-vectors.mjs   (after `pnpm build`)
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  encodeRecord, sha256, GENESIS_PREV, chunkKey, encodeHead, packr, ChainVerifier, chainError, EVENT_TYPES,
} from '../../packages/spec/dist/src/index.js';

const out = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'vectors');
const hex = (b) => Buffer.from(b).toString('hex');
const T0 = 1764000000000; // 2025-11-24T16:00:00Z, fixed

const events = [
  ['PoolInitialised', 1, { poolName: 'docker-8:1-1234-pool', dataDevice: '/dev/loop0', metadataDevice: '/dev/loop1', loopback: true, dataSize: 107374182400, metadataSize: 2147483648, blockSize: 65536, options: { 'dm.fs': 'ext4', 'dm.basesize': '10G' } }],
  ['TransactionBegan', 2, { op: 'createBaseImage', hash: '' }],
  ['BaseImageCreated', 2, { hash: '', deviceId: 1, size: 10737418240, fs: 'ext4', uuid: '6f1c2a5e-1b8e-4c61-9a49-2f8f9ad3c0b7' }],
  ['TransactionCommitted', 2, {}],
  ['TransactionBegan', 3, { op: 'addDevice', hash: 'layer1' }],
  ['SnapshotCreated', 3, { hash: 'layer1', deviceId: 2, parentHash: '', parentDeviceId: 1, size: 10737418240 }],
  ['TransactionCommitted', 3, {}],
  ['DeviceActivated', 3, { hash: 'layer1', deviceId: 2, name: 'docker-8:1-1234-layer1', size: 10737418240 }],
  ['DeviceMounted', 3, { hash: 'layer1', path: '/var/lib/docker/devicemapper/mnt/layer1', options: 'nouuid' }],
  ['DeviceUnmounted', 3, { hash: 'layer1', path: '/var/lib/docker/devicemapper/mnt/layer1' }],
  ['DeviceDeactivated', 3, { hash: 'layer1', deferred: false }],
  ['TransactionBegan', 4, { op: 'createDevice', hash: 'scratch' }],
  ['DeviceCreated', 4, { hash: 'scratch', deviceId: 3, size: 1073741824 }],
  ['TransactionRolledBack', 4, { reason: 'kernel refused create_thin: EEXIST' }],
  ['TransactionBegan', 4, { op: 'resizePool' }],
  ['PoolResized', 4, { dataSize: 214748364800, metadataSize: 4294967296 }],
  ['TransactionCommitted', 4, {}],
  ['DeviceResized', 4, { hash: 'layer1', size: 21474836480 }],
  ['DeletionDeferred', 4, { hash: 'layer1', deviceId: 2 }],
  ['TransactionBegan', 5, { op: 'deleteDevice', hash: 'layer1' }],
  ['DeviceDeleted', 5, { hash: 'layer1', deviceId: 2 }],
  ['TransactionCommitted', 5, {}],
  ['Checkpoint', 5, { atSeq: 22, stateHash: 'c0ffee'.padEnd(64, '0') }],
  // Added after v1's first vectors: appended, so every earlier record keeps its bytes and hash.
  ['PoolDevicesAttached', 5, { dataDevice: '/dev/loop2', metadataDevice: '/dev/loop3', dataFile: '/var/lib/docker/devicemapper/devmapper/data', metadataFile: '/var/lib/docker/devicemapper/devmapper/metadata' }],
  ['RepairBegan', 5, { drift: 'thin ids differ at transaction 5', steps: ['delete thin id 77', 'set_transaction_id 6 5'] }],
  ['RepairFailed', 5, { completed: 1, reason: 'set_transaction_id 6 5: EINVAL' }],
  ['RepairCompleted', 5, { completed: 2, skipped: 1 }],
  // The snapshot namespace (containerd's snapshotter), added after the above: appended likewise.
  ['TransactionBegan', 6, { op: 'addDevice', hash: 'snap-6' }],
  ['SnapshotCreated', 6, { hash: 'snap-6', deviceId: 4, parentHash: '', parentDeviceId: 1, size: 10737418240 }],
  ['SnapshotPrepared', 6, { key: 'default/5/extract-252941172-AC4p sha256:71d6', kind: 'active', hash: 'snap-6', labels: { 'containerd.io/snapshot/x': 'y' }, created: 1764000025000123 }],
  ['TransactionCommitted', 6, {}],
  ['SnapshotCommitted', 6, { key: 'default/5/extract-252941172-AC4p sha256:71d6', name: 'sha256:71d6', labels: {}, time: 1764000029000456 }],
  ['SnapshotLabelsUpdated', 6, { key: 'sha256:71d6', labels: { 'containerd.io/gc.root': '2025-11-24' }, updated: 1764000030000789 }],
  ['TransactionBegan', 7, { op: 'addDevice', hash: 'snap-7' }],
  ['SnapshotCreated', 7, { hash: 'snap-7', deviceId: 5, parentHash: 'snap-6', parentDeviceId: 4, size: 10737418240 }],
  ['SnapshotPrepared', 7, { key: 'view 1', kind: 'view', parent: 'sha256:71d6', hash: 'snap-7', labels: {}, created: 1764000033000000 }],
  ['TransactionCommitted', 7, {}],
  ['TransactionBegan', 8, { op: 'deleteDevice', hash: 'snap-7' }],
  ['DeviceDeleted', 8, { hash: 'snap-7', deviceId: 5 }],
  ['SnapshotRemoved', 8, { key: 'view 1' }],
  ['TransactionCommitted', 8, {}],
];
// chains.json is built over the first 23 records (the chain as first committed), so that records appended to
// records.json later leave every chain vector as it was.
const CHAIN_RECORDS = 23;
const covered = new Set(events.map((e) => e[0]));
for (const t of EVENT_TYPES) if (!covered.has(t)) throw new Error(`no vector for ${t}`);

let prev = GENESIS_PREV;
const records = [];
const bytesList = [];
events.forEach(([type, txId, body], i) => {
  const fields = { seq: i + 1, txId, ts: T0 + i * 1000, type, actor: i % 2 ? 'dockerd' : 'thinjournal', reason: i === 0 ? 'init' : '', body, prev: hex(prev) };
  const bytes = encodeRecord({ ...fields, prev });
  const hash = sha256(bytes);
  records.push({ name: `${i + 1}-${type}`, fields, bytes: hex(bytes), hash: hex(hash) });
  bytesList.push(bytes);
  prev = hash;
});
writeFileSync(path.join(out, 'records.json'), JSON.stringify({ description: 'A valid chain: seq 1..N, each prev = hash of the record before; encode(fields) must equal bytes, sha256(bytes) must equal hash.', records }, null, 2) + '\n');

// Invalid events: encode must throw the code, producing nothing.
const base = { seq: 1, txId: 1, ts: T0, actor: 'a', reason: '', prev: '00'.repeat(32) };
const invalid = [
  ['unknown type', { ...base, type: 'DeviceTeleported', body: {} }],
  ['missing field', { ...base, type: 'DeviceCreated', body: { hash: 'x', deviceId: 1 } }],
  ['unknown field', { ...base, type: 'DeviceCreated', body: { hash: 'x', deviceId: 1, size: 1, colour: 'red' } }],
  ['wrong type', { ...base, type: 'DeviceCreated', body: { hash: 'x', deviceId: '1', size: 1 } }],
  ['negative size', { ...base, type: 'DeviceCreated', body: { hash: 'x', deviceId: 1, size: -1 } }],
  ['fractional size', { ...base, type: 'DeviceCreated', body: { hash: 'x', deviceId: 1, size: 1.5 } }],
  ['unsafe integer', { ...base, type: 'DeviceCreated', body: { hash: 'x', deviceId: 1, size: 2 ** 53 } }],
  ['NUL in string', { ...base, type: 'DeviceCreated', body: { hash: 'a\u0000b', deviceId: 1, size: 1 } }],
  ['id over 255 bytes', { ...base, type: 'DeviceCreated', body: { hash: 'x'.repeat(256), deviceId: 1, size: 1 } }],
  ['body not a map', { ...base, type: 'TransactionCommitted', body: [] }],
  ['negative txId', { ...base, txId: -1, type: 'TransactionCommitted', body: {} }],
  ['oversized body', { ...base, type: 'PoolInitialised', body: { poolName: 'p', dataDevice: 'd', metadataDevice: 'm', loopback: false, dataSize: 1, metadataSize: 1, blockSize: 65536, options: Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`k${i}`, 'v'.repeat(400)])) } }],
  ['PoolDevicesAttached without metadataDevice', { ...base, type: 'PoolDevicesAttached', body: { dataDevice: '/dev/loop2', dataFile: '/f' } }],
  ['PoolDevicesAttached with a loopback flag', { ...base, type: 'PoolDevicesAttached', body: { dataDevice: '/dev/loop2', metadataDevice: '/dev/loop3', loopback: true } }],
  ['RepairBegan with steps not a list', { ...base, type: 'RepairBegan', body: { drift: 'd', steps: 'delete thin id 77' } }],
  ['RepairCompleted without skipped', { ...base, type: 'RepairCompleted', body: { completed: 2 } }],
  ['SnapshotPrepared without hash', { ...base, type: 'SnapshotPrepared', body: { key: 'k', kind: 'active', labels: {}, created: 1 } }],
  ['SnapshotCommitted with a numeric name', { ...base, type: 'SnapshotCommitted', body: { key: 'k', name: 7, labels: {}, time: 1 } }],
  ['SnapshotLabelsUpdated with a fractional time', { ...base, type: 'SnapshotLabelsUpdated', body: { key: 'k', labels: {}, updated: 1.5 } }],
].map(([name, fields]) => ({ name, fields, error: 'ERR_BAD_EVENT' }));
writeFileSync(path.join(out, 'invalid-events.json'), JSON.stringify({ description: 'Each must be refused by encode with the error code; nothing is produced.', cases: invalid }, null, 2) + '\n');

// Undecodable / unsupported stored records.
const good = JSON.parse(JSON.stringify(records[2].fields));
const envelope = (over) => hex(packr.pack({ v: 1, seq: 1, txId: 1, ts: T0, type: 'TransactionCommitted', actor: '', reason: '', body: {}, prev: Buffer.alloc(32), ...over }));
const badRecords = [
  { name: 'not msgpack', bytes: 'c1', error: 'ERR_UNDECODABLE' },
  { name: 'not a map', bytes: hex(packr.pack([1, 2, 3])), error: 'ERR_UNDECODABLE' },
  { name: 'truncated record', bytes: records[2].bytes.slice(0, 40), error: 'ERR_UNDECODABLE' },
  { name: 'trailing bytes', bytes: records[2].bytes + '00', error: 'ERR_UNDECODABLE' },
  { name: 'newer format version', bytes: envelope({ v: 2 }), error: 'ERR_UNKNOWN_VERSION' },
  { name: 'version zero', bytes: envelope({ v: 0 }), error: 'ERR_UNKNOWN_VERSION' },
  { name: 'missing envelope key', bytes: hex(packr.pack({ v: 1, seq: 1, txId: 1, ts: T0, type: 'TransactionCommitted', actor: '', body: {}, prev: Buffer.alloc(32) })), error: 'ERR_UNDECODABLE' },
  { name: 'short prev', bytes: envelope({ prev: Buffer.alloc(31) }), error: 'ERR_UNDECODABLE' },
  { name: 'uint64 beyond 2^53 in seq', bytes: envelope({ seq: 2n ** 63n - 1n }), error: 'ERR_UNDECODABLE' },
  { name: 'valid envelope, bad body', bytes: envelope({ type: 'DeviceCreated', body: { hash: 'x' } }), error: 'ERR_BAD_EVENT' },
];
void good;
writeFileSync(path.join(out, 'bad-records.json'), JSON.stringify({ description: 'Each stored record must be refused by decode with the error code.', cases: badRecords }, null, 2) + '\n');

// Chains: chunks as stored (key → value) plus the head; verify must give the outcome.
const chunk = (first, n) => ({ key: chunkKey(first), value: hex(Buffer.concat(bytesList.slice(first - 1, first - 1 + n))) });
const head = (seq) => ({ seq, hash: seq ? records[seq - 1].hash : null });
const N = CHAIN_RECORDS;
const okChunks = [chunk(1, 1), chunk(2, 3), chunk(5, 3), chunk(8, 4), chunk(12, 6), chunk(18, N - 17)];
const flipByte = (c, at) => { const b = Buffer.from(c.value, 'hex'); b[at] ^= 0x01; return { ...c, value: hex(b) }; };
const rec = (s) => ({ key: chunkKey(s), value: records[s - 1].bytes });
// Change one byte inside the actor string of record s (still valid msgpack, still a valid event).
const tamperActor = (s) => {
  const b = Buffer.from(records[s - 1].bytes, 'hex');
  const actor = Buffer.from(records[s - 1].fields.actor);
  const i = b.indexOf(actor);
  if (i < 0) throw new Error('actor not found');
  b[i] = 0x58; // 'X'
  return { key: chunkKey(s), value: hex(b) };
};
const chains = [
  { name: 'intact', chunks: okChunks, head: head(N), expect: { ok: true, records: N } },
  { name: 'empty journal', chunks: [], head: null, expect: { ok: true, records: 0 } },
  { name: 'one byte of record 3 changed (in its actor)', chunks: [chunk(1, 1), chunk(2, 1), tamperActor(3), chunk(4, N - 3)], head: head(N), expect: { ok: false, kind: 'corrupt', seq: 3, reason: 'bad-hash' } },
  { name: 'last record changed: only the head catches it', chunks: [chunk(1, N - 1), tamperActor(N)], head: head(N), expect: { ok: false, kind: 'corrupt', seq: N, reason: 'bad-hash' } },
  { name: 'record 5 deleted', chunks: [chunk(1, 4), chunk(6, N - 5)], head: head(N), expect: { ok: false, kind: 'corrupt', seq: 5, reason: 'gap' } },
  { name: 'records 5 and 6 swapped inside a chunk', chunks: [chunk(1, 4), { key: chunkKey(5), value: records[5].bytes + records[4].bytes }, chunk(7, N - 6)], head: head(N), expect: { ok: false, kind: 'corrupt', seq: 5, reason: 'gap' } },
  { name: 'chunk values swapped under their keys', chunks: [chunk(1, 4), { key: chunkKey(5), value: records[5].bytes }, { key: chunkKey(6), value: records[4].bytes }, chunk(7, N - 6)], head: head(N), expect: { ok: false, kind: 'corrupt', seq: 5, reason: 'gap' } },
  { name: 'tail chunk deleted (head remembers)', chunks: okChunks.slice(0, -1), head: head(N), expect: { ok: false, kind: 'corrupt', seq: 18, reason: 'truncated' } },
  { name: 'chunk beyond the head', chunks: okChunks, head: head(17), expect: { ok: false, kind: 'corrupt', seq: 18, reason: 'head-mismatch' } },
  { name: 'torn tail: last chunk ends inside a record', chunks: [chunk(1, 17), (() => { const c = chunk(18, N - 17); return { ...c, value: c.value.slice(0, c.value.length - 20) }; })()], head: head(N), expect: { ok: false, kind: 'torn', seq: N, reason: 'torn-tail' } },
  { name: 'torn chunk that is not last is corruption', chunks: [chunk(1, 4), { ...chunk(5, 3), value: chunk(5, 3).value.slice(0, 60) }, chunk(8, N - 7)], head: head(N), expect: { ok: false, kind: 'corrupt', seq: 5, reason: 'undecodable' } },
  { name: 'garbage in the middle of a chunk', chunks: [chunk(1, 4), { ...chunk(5, 3), value: 'c1' + chunk(5, 3).value }, chunk(8, N - 7)], head: head(N), expect: { ok: false, kind: 'corrupt', seq: 5, reason: 'undecodable' } },
  { name: 'first prev not genesis', chunks: [flipByte(rec(1), Buffer.from(records[0].bytes, 'hex').length - 1), chunk(2, N - 1)], head: head(N), expect: { ok: false, kind: 'corrupt', seq: 1, reason: 'bad-hash' } },
  { name: 'wrong chunk key', chunks: [chunk(1, 4), { key: 'rzzzzzzzzzzzzzzzz', value: chunk(5, 1).value }], head: head(N), expect: { ok: false, kind: 'corrupt', seq: 5, reason: 'bad-key' } },
];
for (const c of chains) {
  const v = new ChainVerifier();
  c.chunks.forEach((ch, i) => v.chunk(ch.key, Buffer.from(ch.value, 'hex'), i === c.chunks.length - 1));
  const r = v.finish(c.head && { seq: c.head.seq, hash: c.head.hash });
  for (const [k, want] of Object.entries(c.expect)) {
    if (r[k] !== want) throw new Error(`chain vector "${c.name}": ${k} = ${r[k]}, expected ${want} (${r.message ?? ''})`);
  }
  if (!r.ok) c.expect.error = chainError(r).code;
  c.head = c.head && { ...c.head, bytes: hex(encodeHead({ seq: c.head.seq, hash: c.head.hash })) };
}
writeFileSync(path.join(out, 'chains.json'), JSON.stringify({ description: 'Stored chunks (key → value hex, in key order) and head; verify must report the outcome.', chains }, null, 2) + '\n');
console.log(`wrote ${records.length} records, ${invalid.length} invalid events, ${badRecords.length} bad records, ${chains.length} chains`);
