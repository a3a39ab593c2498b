// What a writer's open and a reader check beyond the chain walk: readers never write nor lock; no journal is
// not a corrupt one; meta and key spaces; the tail from the latest checkpoint (O(tail)); ts order.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { chunkKey, encodeHead, encodeRecord, HEAD_KEY, META_KEY, recordFromDecoded, sha256, splitChunk } from '@thinjournal/spec';
import { Journal } from '../src/index.js';
import { tmpdir, created, raw, expectCode } from './helpers.js';

function fingerprint(dir: string): string {
  const h = createHash('sha256');
  for (const name of readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    h.update(name + '\0');
    if (statSync(p).isFile()) h.update(readFileSync(p));
  }
  return h.digest('hex');
}

async function build(dir: string, n = 20): Promise<Journal> {
  const j = await Journal.open(dir);
  for (let i = 0; i < n; i++) await j.append([created(i)]);
  return j;
}

test('a reader opens a private copy: not a byte of the journal changes, and a writer holding it is not disturbed', async () => {
  const { dir, cleanup } = tmpdir('reader-copy');
  try {
    const w = await build(dir);
    // The writer holds the journal: readers come and go meanwhile, and the writer keeps appending.
    for (let i = 0; i < 3; i++) {
      const r = await Journal.openReader(dir);
      assert.is(r.head().seq, 20 + i);
      assert.is((await r.verify()).result.ok, true);
      await r.close();
      await w.append([created(100 + i)]);
    }
    await w.close();
    const before = fingerprint(dir);
    const r = await Journal.openReader(dir);
    assert.is((await r.read()).length, 23);
    await r.close();
    const ro = await Journal.open(dir, { readOnly: true });
    await ro.verify();
    await ro.close();
    assert.is(fingerprint(dir), before, 'LevelDB did not replay its log in place');
  } finally { cleanup(); }
});

test('no journal is not corruption: missing, empty, a file, not a journal — each its own code, nothing created', async () => {
  const { dir, cleanup } = tmpdir('no-journal');
  try {
    await expectCode(Journal.openReader(dir), 'ERR_NO_JOURNAL');
    await expectCode(Journal.open(dir, { createIfMissing: false }), 'ERR_NO_JOURNAL');
    assert.throws(() => statSync(dir), 'nothing created');
    mkdirSync(dir, { recursive: true });
    await expectCode(Journal.openReader(dir), 'ERR_NO_JOURNAL');
    await expectCode(Journal.open(dir, { createIfMissing: false }), 'ERR_NO_JOURNAL');
    assert.equal(readdirSync(dir), [], 'still empty');
    writeFileSync(path.join(dir, 'notes.txt'), 'hello');
    await expectCode(Journal.openReader(dir), 'ERR_NOT_A_JOURNAL');
    await expectCode(Journal.open(dir), 'ERR_NOT_A_JOURNAL');
    assert.equal(readdirSync(dir), ['notes.txt']);
    const file = path.join(dir, 'notes.txt');
    await expectCode(Journal.openReader(file), 'ERR_NOT_A_JOURNAL');
    await expectCode(Journal.open(file), 'ERR_NOT_A_JOURNAL');
    await expectCode(Journal.open(path.join(file, 'journal')), 'ERR_NOT_A_JOURNAL');
  } finally { cleanup(); }
});

test('a LevelDB database of other keys is not a journal', async () => {
  const { dir, cleanup } = tmpdir('foreign-db');
  try {
    mkdirSync(dir, { recursive: true });
    const db = await raw(dir);
    await db.put('user:1', Buffer.from('alice'));
    await db.close();
    await expectCode(Journal.openReader(dir), 'ERR_NOT_A_JOURNAL');
    await expectCode(Journal.open(dir), 'ERR_NOT_A_JOURNAL');
  } finally { cleanup(); }
});

test('a deleted meta key is corruption, never re-created with a new journal id', async () => {
  const { dir, cleanup } = tmpdir('no-meta');
  try {
    const j = await build(dir, 5);
    const id = j.journalId;
    await j.close();
    const db = await raw(dir);
    await db.del(META_KEY);
    await db.close();
    const e = await expectCode(Journal.open(dir), 'ERR_JOURNAL_CORRUPT');
    assert.match(e.message, /no-meta/);
    const r = await Journal.openReader(dir);
    const v = (await r.verify()).result;
    await r.close();
    assert.is(v.ok, false);
    if (!v.ok) assert.is(v.reason, 'no-meta');
    const db2 = await raw(dir);
    assert.is(await db2.get(META_KEY), undefined, 'm was not re-created');
    await db2.close();
    assert.ok(id);
  } finally { cleanup(); }
});

test('a key outside the key spaces: the writer refuses, verify names the key', async () => {
  for (const key of ['a', 'd', 'hx', 'mm', 's', 'zz']) {
    const { dir, cleanup } = tmpdir('foreign-key');
    try {
      await (await build(dir, 3)).close();
      const db = await raw(dir);
      await db.put(key, Buffer.from('x'));
      await db.close();
      const e = await expectCode(Journal.open(dir), 'ERR_JOURNAL_CORRUPT');
      assert.match(e.message, new RegExp(`foreign-key.*"${key}"|"${key}".*foreign-key`));
      const r = await Journal.openReader(dir);
      const v = (await r.verify()).result;
      await r.close();
      assert.is(v.ok, false, key);
      if (!v.ok) { assert.is(v.reason, 'foreign-key'); assert.is(v.key, key); }
    } finally { cleanup(); }
  }
});

/** Rewrites the record at `seq` (its prev kept) with `change`. */
async function alter(dir: string, seq: number, change: (body: Record<string, unknown>) => Record<string, unknown>): Promise<void> {
  const db = await raw(dir);
  for await (const [key, value] of db.iterator({ gte: 'r', lt: 's' })) {
    const { entries } = splitChunk(value);
    const recs = entries.map((e) => ({ rec: recordFromDecoded(e.raw, value.subarray(e.start, e.end)), bytes: value.subarray(e.start, e.end) }));
    const i = recs.findIndex((x) => x.rec.seq === seq);
    if (i < 0) continue;
    const r = recs[i]!.rec;
    const bytes = encodeRecord({ seq: r.seq, txId: r.txId, ts: r.ts, type: r.type, actor: r.actor, reason: r.reason, body: change({ ...r.body }), prev: Buffer.from(r.prev, 'hex') });
    await db.put(key, Buffer.concat(recs.map((x, k) => (k === i ? bytes : Buffer.from(x.bytes)))));
    break;
  }
  await db.close();
}

test('a writer verifies the tail from the latest checkpoint: damage after it is refused, before it is verify\'s', async () => {
  const { dir, cleanup } = tmpdir('tail');
  try {
    const j = await build(dir, 30);
    await j.putCheckpoint(20, { n: 20 }, 'state-hash-20');
    await j.close();
    // Before the checkpoint: outside the writer's O(tail) walk; verify finds it.
    await alter(dir, 10, (b) => ({ ...b, size: 2 * 2 ** 30 }));
    const w = await Journal.open(dir);
    assert.is(w.head().seq, 30);
    await w.close();
    const r = await Journal.openReader(dir);
    const v = (await r.verify()).result;
    await r.close();
    assert.is(v.ok, false);
    if (!v.ok) { assert.is(v.reason, 'bad-hash'); assert.is(v.seq, 10); }
    // After it: refused, naming the seq, and nothing is appended.
    await alter(dir, 25, (b) => ({ ...b, size: 3 * 2 ** 30 }));
    const e = await expectCode(Journal.open(dir), 'ERR_JOURNAL_CORRUPT');
    assert.match(e.message, /seq 25: bad-hash/);
    // The checkpoint's own record: the walk must pass through it with the recorded hash.
    const { dir: dir2, cleanup: c2 } = tmpdir('tail-anchor');
    try {
      const j2 = await build(dir2, 30);
      await j2.putCheckpoint(20, { n: 20 }, 'h');
      await j2.close();
      await alter(dir2, 20, (b) => ({ ...b, size: 5 * 2 ** 30 }));
      const e2 = await expectCode(Journal.open(dir2), 'ERR_JOURNAL_CORRUPT');
      assert.match(e2.message, /seq 20/);
    } finally { c2(); }
  } finally { cleanup(); }
});

test('a deleted chunk is corruption at the writer\'s open, naming the missing seq', async () => {
  const { dir, cleanup } = tmpdir('gap');
  try {
    await (await build(dir, 12)).close();
    const db = await raw(dir);
    await db.del(chunkKey(7));
    await db.close();
    const e = await expectCode(Journal.open(dir), 'ERR_JOURNAL_CORRUPT');
    assert.match(e.message, /seq 7: gap/);
  } finally { cleanup(); }
});

test('ts going backwards along a re-hashed chain is corruption (ts-backwards)', async () => {
  const { dir, cleanup } = tmpdir('ts');
  try {
    await (await build(dir, 8)).close();
    const db = await raw(dir);
    let prev: Buffer | null = null;
    let last = { seq: 0, hash: '' };
    for (const [key, value] of await db.iterator({ gte: 'r', lt: 's' }).all()) {
      const { entries } = splitChunk(value);
      const parts: Buffer[] = [];
      for (const en of entries) {
        const r = recordFromDecoded(en.raw, value.subarray(en.start, en.end));
        const bytes = encodeRecord({ seq: r.seq, txId: r.txId, ts: r.seq === 5 ? r.ts - 60_000 : r.ts, type: r.type, actor: r.actor, reason: r.reason, body: r.body, prev: prev ?? Buffer.from(r.prev, 'hex') });
        prev = sha256(bytes);
        last = { seq: r.seq, hash: prev.toString('hex') };
        parts.push(bytes);
      }
      await db.put(key, Buffer.concat(parts));
    }
    await db.put(HEAD_KEY, encodeHead(last));
    await db.close();
    const r = await Journal.openReader(dir);
    const v = (await r.verify()).result;
    await r.close();
    assert.is(v.ok, false);
    if (!v.ok) { assert.is(v.reason, 'ts-backwards'); assert.is(v.seq, 5); }
    await expectCode(Journal.open(dir), 'ERR_JOURNAL_CORRUPT');
  } finally { cleanup(); }
});

/** A closed journal whose last commits are still in LevelDB's log (not yet compacted into a table). */
async function withLog(dir: string): Promise<string> {
  const j = await Journal.open(dir);
  for (let i = 0; i < 40; i++) await j.append([created(i)]);
  await j.close();
  const logs = readdirSync(dir).filter((n) => n.endsWith('.log'));
  assert.ok(logs.length >= 1 && statSync(path.join(dir, logs.at(-1)!)).size > 1000, 'records in the log');
  return path.join(dir, logs.at(-1)!);
}

test('a flipped bit in LevelDB\'s log: the writer refuses before LevelDB opens (file and offset named, no byte changed); readers report it', async () => {
  const { dir, cleanup } = tmpdir('log-flip');
  try {
    const log = await withLog(dir);
    const b = readFileSync(log);
    const at = Math.floor(b.length * 0.4);
    b[at] = b[at]! ^ 0x10;
    writeFileSync(log, b);
    const before = fingerprint(dir);
    const e = await expectCode(Journal.open(dir), 'ERR_JOURNAL_CORRUPT');
    assert.match(e.message, new RegExp(`${path.basename(log)}.*offset \\d+`));
    assert.is((e as unknown as { reason: string }).reason, 'store');
    assert.is(fingerprint(dir), before, 'the writer left the journal untouched');
    const re = await expectCode(Journal.openReader(dir), 'ERR_JOURNAL_CORRUPT');
    assert.is((re as unknown as { file: string }).file, path.basename(log));
    // Damage is never handed to LevelDB, not even for a reader that accepts torn tails.
    await expectCode(Journal.openReader(dir, { allowTornTail: true }), 'ERR_JOURNAL_CORRUPT');
    assert.is(fingerprint(dir), before);
  } finally { cleanup(); }
});

test('LevelDB\'s log cut short: a torn tail, refused until an operator says repairTornTail, then dropped and reported', async () => {
  const { dir, cleanup } = tmpdir('log-torn');
  try {
    const log = await withLog(dir);
    truncateSync(log, statSync(log).size - 20);
    const before = fingerprint(dir);
    const e = await expectCode(Journal.open(dir), 'ERR_JOURNAL_TORN');
    assert.match(e.message, new RegExp(path.basename(log)));
    assert.is(fingerprint(dir), before, 'refused without a change');
    const r = await Journal.openReader(dir, { allowTornTail: true });
    const v = (await r.verify()).result;
    await r.close();
    assert.is(v.ok, false);
    if (!v.ok) { assert.is(v.kind, 'torn'); assert.is(v.reason, 'torn-tail'); }
    const j = await Journal.open(dir, { repairTornTail: true });
    assert.ok(j.repaired, 'the drop is reported');
    assert.is(j.repaired!.file, path.basename(log));
    assert.is(j.repaired!.fromSeq, j.head().seq + 1);
    assert.ok(j.head().seq < 40, 'the torn commit is gone');
    assert.ok(j.head().seq >= 39, 'only the torn commit');
    await j.append([created(99)]);
    await j.close();
    const again = await Journal.openReader(dir);
    assert.is((await again.verify()).result.ok, true);
    await again.close();
  } finally { cleanup(); }
});

test.run();
