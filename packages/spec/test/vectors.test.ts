// The codec against every journal-spec vector (journal-spec/vectors/*.json).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  encodeRecord, decodeRecord, sha256, ChainVerifier, chainError, decodeHead, EVENT_TYPES, ThinjournalError,
} from '../src/index.js';

const dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../journal-spec/vectors');
const load = (name: string) => JSON.parse(readFileSync(path.join(dir, name), 'utf8'));
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

const { records } = load('records.json');

test('records: encode(fields) = bytes, sha256(bytes) = hash, decode(bytes) = fields', () => {
  assert.ok(records.length >= EVENT_TYPES.length);
  for (const r of records) {
    const bytes = encodeRecord({ ...r.fields, prev: Buffer.from(r.fields.prev, 'hex') });
    assert.is(hex(bytes), r.bytes, `bytes of ${r.name}`);
    assert.is(hex(sha256(bytes)), r.hash, `hash of ${r.name}`);
    const d = decodeRecord(Buffer.from(r.bytes, 'hex'));
    assert.equal({ seq: d.seq, txId: d.txId, ts: d.ts, type: d.type, actor: d.actor, reason: d.reason, body: d.body, prev: d.prev }, r.fields, `decode of ${r.name}`);
    assert.is(d.hash, r.hash);
  }
});

test('records: every event type of the catalogue has a vector', () => {
  const types = new Set(records.map((r: { fields: { type: string } }) => r.fields.type));
  for (const t of EVENT_TYPES) assert.ok(types.has(t), t);
});

test('records: the vectors form a chain (prev = hash of the record before)', () => {
  let prev = '0'.repeat(64);
  for (const r of records) {
    assert.is(r.fields.prev, prev, r.name);
    prev = r.hash;
  }
});

test('records: encoding is independent of body key order', () => {
  for (const r of records) {
    const reversed = Object.fromEntries(Object.entries(r.fields.body).reverse());
    const bytes = encodeRecord({ ...r.fields, body: reversed, prev: Buffer.from(r.fields.prev, 'hex') });
    assert.is(hex(bytes), r.bytes, r.name);
  }
});

test('PoolDevicesAttached: its vector is appended to the original chain, which chains.json still covers', () => {
  const i = records.findIndex((r: { fields: { type: string } }) => r.fields.type === 'PoolDevicesAttached');
  assert.is(i, 23, 'record 24, after the 23 records of the first v1 vectors');
  const r = records[i];
  assert.is(r.fields.txId, records[i - 1].fields.txId, 'not a transaction: the committed txId');
  const d = decodeRecord(Buffer.from(r.bytes, 'hex'));
  assert.equal(Object.keys(d.body), ['dataDevice', 'metadataDevice', 'dataFile', 'metadataFile'], 'schema order');
  // the chain vectors end at record 23: appending left them as they were
  const intact = load('chains.json').chains.find((c: { name: string }) => c.name === 'intact');
  assert.is(intact.expect.records, 23);
  assert.is(intact.head.hash, records[22].hash);
  // optional files omitted when absent; anything else in the body refused
  const base = { seq: 1, txId: 0, ts: 0, type: 'PoolDevicesAttached', actor: '', reason: '', prev: Buffer.alloc(32) };
  const bare = decodeRecord(encodeRecord({ ...base, body: { metadataDevice: '/dev/loop3', dataDevice: '/dev/loop2' } }));
  assert.equal(bare.body, { dataDevice: '/dev/loop2', metadataDevice: '/dev/loop3' });
  for (const body of [{ dataDevice: '/dev/loop2' }, { dataDevice: '/dev/loop2', metadataDevice: 3 }, { dataDevice: 'a', metadataDevice: 'b', hash: 'x' }, { dataDevice: 'a', metadataDevice: 'b', dataFile: null }]) {
    try {
      encodeRecord({ ...base, body });
      assert.unreachable(JSON.stringify(body));
    } catch (err) {
      assert.is((err as ThinjournalError).code, 'ERR_BAD_EVENT', JSON.stringify(body));
    }
  }
});

test('invalid events: encode refuses each with its code', () => {
  for (const c of load('invalid-events.json').cases) {
    try {
      encodeRecord({ ...c.fields, prev: Buffer.from(c.fields.prev, 'hex') });
      assert.unreachable(`${c.name} was encoded`);
    } catch (err) {
      assert.instance(err, ThinjournalError, c.name);
      assert.is((err as ThinjournalError).code, c.error, `${c.name}: ${(err as Error).message}`);
    }
  }
});

test('bad records: decode refuses each with its code', () => {
  for (const c of load('bad-records.json').cases) {
    try {
      decodeRecord(Buffer.from(c.bytes, 'hex'));
      assert.unreachable(`${c.name} was decoded`);
    } catch (err) {
      assert.is((err as ThinjournalError).code, c.error, `${c.name}: ${(err as Error).message}`);
    }
  }
});

test('chains: the verifier reports each outcome (first bad seq, reason, kind, error code)', () => {
  for (const c of load('chains.json').chains) {
    const v = new ChainVerifier();
    c.chunks.forEach((ch: { key: string; value: string }, i: number) => v.chunk(ch.key, Buffer.from(ch.value, 'hex'), i === c.chunks.length - 1));
    const head = c.head ? decodeHead(Buffer.from(c.head.bytes, 'hex')) : null;
    if (c.head) assert.equal(head, { seq: c.head.seq, hash: c.head.hash });
    const r = v.finish(head);
    assert.is(r.ok, c.expect.ok, `${c.name}: ${r.ok ? '' : r.message}`);
    if (r.ok) {
      assert.is(r.records, c.expect.records, c.name);
    } else {
      assert.is(r.kind, c.expect.kind, c.name);
      assert.is(r.seq, c.expect.seq, `${c.name}: ${r.message}`);
      assert.is(r.reason, c.expect.reason, c.name);
      assert.is(chainError(r).code, c.expect.error, c.name);
    }
  }
});

test.run();
