// Damage on disk under a closed journal: verify names the seq; open refuses corruption and torn tails
// differently; a torn tail can be repaired explicitly.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chunkKey, HEAD_KEY } from '@thinjournal/spec';
import { Journal } from '../src/index.js';
import { tmpdir, created, raw, expectCode } from './helpers.js';

/** A closed journal of 20 records, one chunk per record (each append its own commit). */
async function build(dir: string, n = 20): Promise<string[]> {
  const j = await Journal.open(dir);
  const hashes: string[] = [];
  for (let i = 0; i < n; i++) hashes.push((await j.append([created(i)]))[0]!.hash);
  await j.close();
  return hashes;
}

async function verifyResult(dir: string) {
  const j = await Journal.open(dir, { readOnly: true });
  try { return (await j.verify()).result; } finally { await j.close(); }
}

test('one byte of a stored record changed → verify names that seq (bad-hash)', async () => {
  const { dir, cleanup } = tmpdir('tamper-byte');
  try {
    await build(dir);
    const db = await raw(dir);
    const v = Buffer.from((await db.get(chunkKey(7)))!);
    const at = v.indexOf(Buffer.from('dev-6'));
    v[at + 4] = '9'.charCodeAt(0); // dev-6 → dev-9: still a valid event, different bytes
    await db.put(chunkKey(7), v);
    await db.close();
    const r = await verifyResult(dir);
    assert.is(r.ok, false);
    if (!r.ok) { assert.is(r.seq, 7); assert.is(r.reason, 'bad-hash'); assert.is(r.kind, 'corrupt'); }
  } finally { cleanup(); }
});

test('a record deleted → gap at its seq; two swapped → named; tail deleted → truncated; open refuses', async () => {
  const cases: [string, (db: Awaited<ReturnType<typeof raw>>) => Promise<void>, number, string][] = [
    ['delete', async (db) => db.del(chunkKey(5)), 5, 'gap'],
    ['swap', async (db) => {
      const a = (await db.get(chunkKey(9)))!, b = (await db.get(chunkKey(10)))!;
      await db.batch([{ type: 'put', key: chunkKey(9), value: b }, { type: 'put', key: chunkKey(10), value: a }]);
    }, 9, 'gap'],
    ['truncate', async (db) => db.del(chunkKey(20)), 20, 'truncated'],
    ['head ahead', async (db) => { const h = await db.get(HEAD_KEY); await db.del(chunkKey(20)); await db.put(HEAD_KEY, h!); }, 20, 'truncated'],
  ];
  for (const [name, damage, seq, reason] of cases) {
    const { dir, cleanup } = tmpdir(`tamper-${name}`);
    try {
      await build(dir);
      const db = await raw(dir);
      await damage(db);
      await db.close();
      const r = await verifyResult(dir);
      assert.is(r.ok, false, name);
      if (!r.ok) { assert.is(r.seq, seq, name); assert.is(r.reason, reason, name); }
      if (name !== 'delete' && name !== 'swap') await expectCode(Journal.open(dir), 'ERR_JOURNAL_CORRUPT');
    } finally { cleanup(); }
  }
});

test('torn tail: open refuses with ERR_JOURNAL_TORN (not corrupt); repairTornTail drops it, reports it, and appends go on', async () => {
  const { dir, cleanup } = tmpdir('torn');
  try {
    const hashes = await build(dir, 10);
    const db = await raw(dir);
    const v = (await db.get(chunkKey(10)))!;
    await db.put(chunkKey(10), v.subarray(0, v.length - 7));
    await db.close();
    const err = await expectCode(Journal.open(dir), 'ERR_JOURNAL_TORN');
    assert.match(err.message, /seq 10/);
    const r = await verifyResult(dir);
    assert.is(r.ok, false);
    if (!r.ok) { assert.is(r.kind, 'torn'); assert.is(r.seq, 10); }
    const j = await Journal.open(dir, { repairTornTail: true });
    assert.equal(j.repaired?.fromSeq, 10);
    assert.equal(j.head(), { seq: 9, hash: hashes[8] });
    const [rec] = await j.append([created(10)]);
    assert.is(rec!.seq, 10);
    assert.is(rec!.prev, hashes[8]);
    assert.ok((await j.verify()).result.ok);
    await j.close();
  } finally { cleanup(); }
});

test.run();
