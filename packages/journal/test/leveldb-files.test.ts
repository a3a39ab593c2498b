// The LevelDB file checker against real LevelDB directories built with classic-level, damaged on copies:
// every kind of damage is found (file, offset, reason), torn final writes are told apart from corruption,
// LevelDB itself is shown to drop or misreport what is flagged, and the checker never changes the directory.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import {
  appendFileSync, chmodSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync,
  truncateSync, unlinkSync, writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { checkStore, crc32c, type StoreReport } from '../src/leveldb-files.js';

const BLOCK = 32768;
const base = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-leveldb-files-'));
let copies = 0;

// ---------------------------------------------------------------------------------------------------------
// Helpers

/** Every file's name and sha256, to prove the checker changes nothing. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, prefix: string): void => {
    for (const ent of readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, ent.name);
      if (ent.isDirectory()) { out[prefix + ent.name + '/'] = 'dir'; walk(p, prefix + ent.name + '/'); continue; }
      let h: string;
      try { h = createHash('sha256').update(readFileSync(p)).digest('hex'); } catch (e) { h = `unreadable ${(e as { code?: string }).code}`; }
      out[prefix + ent.name] = h;
    }
  };
  walk(dir, '');
  return out;
}

/** checkStore, asserting that the directory is byte-for-byte and name-for-name the same afterwards. */
function check(dir: string, opts?: { tables?: 'full' | 'footer' }): StoreReport {
  const before = snapshot(dir);
  const r = checkStore(dir, opts);
  assert.equal(snapshot(dir), before, 'the checker changed the directory');
  return r;
}

function copy(src: string): string {
  const dst = path.join(base, `copy-${++copies}`);
  cpSync(src, dst, { recursive: true });
  rmSync(path.join(dst, 'LOCK'), { force: true });
  return dst;
}

function flipBit(file: string, pos: number, bit = 0): void {
  const b = readFileSync(file);
  b[pos] = b[pos]! ^ (1 << bit);
  writeFileSync(file, b);
}

function overwrite(file: string, pos: number, bytes: Uint8Array): void {
  const b = readFileSync(file);
  b.set(bytes, pos);
  writeFileSync(file, b);
}

const only = (dir: string, suffix: string): string => {
  const f = readdirSync(dir).filter((n) => n.endsWith(suffix));
  assert.is(f.length, 1, `one ${suffix} in ${dir}: ${f.join(' ')}`);
  return f[0]!;
};
const manifestOf = (dir: string): string => readFileSync(path.join(dir, 'CURRENT'), 'latin1').trim();

const clean = (r: StoreReport, what: string): void => {
  assert.equal(r.problems, [], `${what}: ${JSON.stringify(r.problems, null, 1)}`);
  assert.equal(r.torn, [], `${what}: ${JSON.stringify(r.torn, null, 1)}`);
};

/** One problem, with the reason, file and offset given, and a message naming both. */
function one(r: StoreReport, reason: string, file: string, offset: number | null, what: string): string {
  assert.is(r.problems.length, 1, `${what}: ${JSON.stringify(r.problems, null, 1)} torn ${JSON.stringify(r.torn)}`);
  const p = r.problems[0]!;
  assert.equal({ reason: p.reason, file: p.file, offset: p.offset }, { reason, file, offset }, `${what}: ${p.message}`);
  assert.ok(p.message.startsWith(`${file}: `), p.message);
  if (offset !== null) assert.ok(p.message.includes(`offset ${offset}`), p.message);
  assert.equal(r.torn, [], `${what}: nothing torn: ${JSON.stringify(r.torn)}`);
  return p.message;
}

function tornOnly(r: StoreReport, file: string, offset: number, bytes: number, what: string): string {
  assert.equal(r.problems, [], `${what}: ${JSON.stringify(r.problems, null, 1)}`);
  assert.is(r.torn.length, 1, `${what}: ${JSON.stringify(r.torn)}`);
  const t = r.torn[0]!;
  assert.equal({ file: t.file, offset: t.offset, bytes: t.bytes }, { file, offset, bytes }, `${what}: ${t.message}`);
  assert.ok(t.message.startsWith(`${file}: `) && t.message.includes(`offset ${offset}`), t.message);
  return t.message;
}

/** An independent walk of a clean log file: physical records and block padding. */
interface Phys { off: number; type: number; len: number }
function walkLog(b: Uint8Array): { recs: Phys[]; pads: Array<[number, number]>; logical: Phys[][] } {
  const recs: Phys[] = [];
  const pads: Array<[number, number]> = [];
  let p = 0;
  while (p < b.length) {
    const left = BLOCK - (p % BLOCK);
    if (left < 7) { pads.push([p, p + left]); p += left; continue; }
    const len = b[p + 4]! | (b[p + 5]! << 8);
    recs.push({ off: p, type: b[p + 6]!, len });
    p += 7 + len;
  }
  assert.is(p, b.length, 'the clean log walks to its end');
  const logical: Phys[][] = [];
  for (const r of recs) {
    if (r.type === 1 || r.type === 2) logical.push([r]);
    else logical[logical.length - 1]!.push(r);
  }
  return { recs, pads, logical };
}

/** A log record as the LevelDB writer frames it (for hand-made records with valid checksums). */
function record(type: number, payload: Uint8Array): Buffer {
  const crc = crc32c(Buffer.concat([Buffer.from([type]), payload]));
  const masked = ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0;
  const h = Buffer.alloc(7);
  h.writeUInt32LE(masked, 0);
  h.writeUInt16LE(payload.length, 4);
  h[6] = type;
  return Buffer.concat([h, payload]);
}

/** A one-put write batch. */
function batch(seq: number, key: string, value: string): Buffer {
  const h = Buffer.alloc(12);
  h.writeBigUInt64LE(BigInt(seq), 0);
  h.writeUInt32LE(1, 8);
  const k = Buffer.from(key), v = Buffer.from(value);
  return Buffer.concat([h, Buffer.from([1, k.length]), k, Buffer.from([v.length]), v]);
}

/** The bitwise definition of crc32c, to check the table-driven one against. */
function crcBitwise(d: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of d) {
    c ^= byte;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

function varint(b: Uint8Array, p: number): [number, number] {
  let v = 0, s = 1;
  for (;;) { const x = b[p++]!; v += (x & 127) * s; s *= 128; if (x < 128) return [v, p]; }
}

/** An independent walk of an uncompressed table: footer → index → data block handles. */
function tableBlocks(b: Uint8Array): { data: Array<[number, number]>; meta: [number, number]; index: [number, number]; footer: number } {
  const footer = b.length - 48;
  let p = footer;
  let mo, ms, io, is;
  [mo, p] = varint(b, p); [ms, p] = varint(b, p); [io, p] = varint(b, p); [is, p] = varint(b, p);
  assert.is(b[io + is], 0, 'index block stored uncompressed');
  const blk = b.subarray(io, io + is);
  const restarts = Buffer.from(blk).readUInt32LE(is - 4);
  const end = is - 4 - 4 * restarts;
  const data: Array<[number, number]> = [];
  let q = 0;
  while (q < end) {
    let shared, own, vlen;
    [shared, q] = varint(blk, q); [own, q] = varint(blk, q); [vlen, q] = varint(blk, q);
    void shared;
    q += own;
    const [off, r] = varint(blk, q);
    const [size] = varint(blk, r);
    data.push([off, size]);
    q += vlen;
  }
  return { data, meta: [mo, ms], index: [io, is], footer };
}

async function readAll(dir: string): Promise<Map<string, string>> {
  const db = new ClassicLevel<string, string>(dir);
  await db.open();
  try {
    const out = new Map<string, string>();
    for await (const [k, v] of db.iterator()) out.set(k, v);
    return out;
  } finally { await db.close(); }
}

async function openError(dir: string): Promise<string | null> {
  const db = new ClassicLevel<string, string>(dir);
  try { await db.open(); } catch (e) {
    const cause = (e as { cause?: { message?: string } }).cause;
    return `${(e as Error).message} ${cause?.message ?? ''}`;
  }
  await db.close();
  return null;
}

// ---------------------------------------------------------------------------------------------------------
// Fixtures: real LevelDB directories.

const key = (i: number): string => `key-${String(i).padStart(4, '0')}`;
const LOG_DB = path.join(base, 'log-db'); // everything in one live log: padding, fragments, a 2 KiB final record
const TABLE_DB = path.join(base, 'table-db'); // many snappy-compressed tables, a live log, a MANIFEST of many edits
const RAW_DB = path.join(base, 'raw-db'); // tables without compression, reopened (its log became a table)
const written = new Map<string, string>(); // LOG_DB's content
let logName = '';
let padAt = 0; // start of the 3 bytes of block padding in LOG_DB's log

test.before(async () => {
  {
    const db = new ClassicLevel<string, string>(LOG_DB);
    await db.open();
    let i = 0;
    const put = async (value: string): Promise<void> => {
      written.set(key(i), value);
      await db.batch([{ type: 'put', key: key(i++), value }], { sync: true });
    };
    const value = (n: number): string => `${i}:`.padEnd(n, 'abcdefghijklmnopqrstuvwxyz');
    const logSize = (): number => statSync(path.join(LOG_DB, only(LOG_DB, '.log'))).size;
    for (let k = 0; k < 100; k++) await put(value(60 + ((k * 37) % 200)));
    while (BLOCK - (logSize() % BLOCK) < 300 || BLOCK - (logSize() % BLOCK) > 16000) await put(value(150));
    // A record that ends 3 bytes before the block boundary: 7 header + 12 batch header + 1 tag + 1 + 8 key
    // + 2 value length + value.
    const rem = BLOCK - (logSize() % BLOCK);
    await put(value(rem - 3 - 31));
    padAt = logSize();
    assert.is(padAt % BLOCK, BLOCK - 3, 'the record ends 3 bytes before the block boundary');
    for (let k = 0; k < 20; k++) await put(value(100 + k));
    await put(value(70_000)); // FIRST, MIDDLE, LAST over three blocks
    for (let k = 0; k < 20; k++) await put(value(100 + k));
    await put(value(2_000)); // the final record spans 512-byte sector boundaries
    await db.close();
    logName = only(LOG_DB, '.log');
  }
  for (const [dir, compression, n, size, reopen] of [[TABLE_DB, true, 400, 700, false], [RAW_DB, false, 300, 150, true]] as const) {
    const opts = { writeBufferSize: 4096, compression };
    let db = new ClassicLevel<string, string>(dir, opts);
    await db.open();
    for (let i = 0; i < n; i++) {
      const value = compression ? `value ${i} `.repeat(size / 10) : `v${i}:`.padEnd(size, 'x');
      await db.batch([{ type: 'put', key: key(i), value }], { sync: true });
    }
    await db.close();
    if (!reopen) continue; // TABLE_DB keeps a live log and a MANIFEST of many edits
    db = new ClassicLevel<string, string>(dir, opts); // reopening turns the log into a level-0 table
    await db.open();
    await db.close();
  }
});

test.after(() => { rmSync(base, { recursive: true, force: true }); });

// ---------------------------------------------------------------------------------------------------------
// crc32c

test('crc32c: LevelDB / RFC 3720 vectors, chaining, agreement with the bitwise definition; speed', () => {
  assert.is(crc32c(Buffer.from('123456789')), 0xe3069283);
  assert.is(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.is(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assert.is(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
  assert.is(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
  assert.is(crc32c(new Uint8Array(0)), 0);
  assert.is(crc32c(Buffer.from('hello world')), crc32c(Buffer.from(' world'), crc32c(Buffer.from('hello'))), 'init chains');
  const big = new Uint8Array(70_001);
  let x = 12345;
  for (let i = 0; i < big.length; i++) { x = (x * 1103515245 + 12345) >>> 0; big[i] = x >>> 24; }
  for (const [start, len] of [[0, 0], [1, 1], [3, 7], [5, 63], [1, 64], [2, 65], [7, 1000], [1, 70_000], [0, 70_001]] as const) {
    const view = big.subarray(start, start + len); // unaligned views too
    assert.is(crc32c(view), crcBitwise(view), `start ${start} len ${len}`);
    const mid = len >> 1;
    assert.is(crc32c(view.subarray(mid), crc32c(view.subarray(0, mid))), crcBitwise(view), `chained ${start} ${len}`);
  }
  const data = new Uint8Array(32 << 20);
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
  crc32c(data.subarray(0, 1 << 20)); // warm up
  let best = 0;
  for (let r = 0; r < 3; r++) {
    const t = performance.now();
    crc32c(data);
    best = Math.max(best, 32 / ((performance.now() - t) / 1000));
  }
  console.log(`    crc32c: ${best.toFixed(0)} MiB/s over 32 MiB (best of 3)`);
});

// ---------------------------------------------------------------------------------------------------------
// Clean directories

test('clean directories: no problems, nothing torn; the live logs and tables are listed', () => {
  for (const dir of [LOG_DB, TABLE_DB, RAW_DB]) {
    for (const tables of ['full', 'footer'] as const) {
      const r = check(dir, { tables });
      clean(r, dir);
      assert.is(r.manifest, manifestOf(dir));
      assert.equal(r.logs, readdirSync(dir).filter((f) => f.endsWith('.log')).sort());
      assert.equal(r.tables, readdirSync(dir).filter((f) => f.endsWith('.ldb')).sort());
    }
  }
  assert.equal(check(LOG_DB).logs, [logName]);
  assert.ok(check(TABLE_DB).tables.length >= 5, 'several tables');
  const { recs, pads } = walkLog(readFileSync(path.join(LOG_DB, logName)));
  assert.equal(pads, [[padAt, padAt + 3]], 'the log has block padding');
  assert.ok(recs.some((r) => r.type === 3), 'and a fragmented record');
});

test('a directory without CURRENT (or missing) → current-bad', () => {
  const empty = path.join(base, 'empty');
  mkdirSync(empty);
  const r = check(empty);
  one(r, 'current-bad', 'CURRENT', null, 'empty dir');
  assert.is(r.manifest, null);
  one(checkStore(path.join(base, 'does-not-exist')), 'current-bad', 'CURRENT', null, 'no dir');
  const dir = copy(LOG_DB);
  unlinkSync(path.join(dir, 'CURRENT'));
  one(check(dir), 'current-bad', 'CURRENT', null, 'CURRENT deleted');
});

test('garbage CURRENT, no newline, or a missing manifest → current-bad (and LevelDB refuses to open)', async () => {
  const m = manifestOf(LOG_DB);
  for (const [content, why] of [
    ['garbage\n', 'garbage'], [m, 'no newline'], [`${m}\n\n`, 'two newlines'], ['MANIFEST-\n', 'no digits'], ['', 'empty'],
    ['MANIFEST-999999\n', 'missing manifest'],
  ] as const) {
    const dir = copy(LOG_DB);
    writeFileSync(path.join(dir, 'CURRENT'), content);
    const r = check(dir);
    const msg = one(r, 'current-bad', 'CURRENT', null, why);
    if (why === 'missing manifest') assert.match(msg, /MANIFEST-999999, which does not exist/);
    assert.ok((await openError(dir)) !== null, `LevelDB refuses ${why} too`);
  }
});

// ---------------------------------------------------------------------------------------------------------
// The log

test('a flipped bit in every 97th byte of the log → log-corrupt at the record holding it, never torn', () => {
  const dir = copy(LOG_DB);
  const file = path.join(dir, logName);
  const bytes = readFileSync(file);
  const { recs, pads } = walkLog(bytes);
  const n = bytes.length;
  let cases = 0, inFinal = 0, inFragments = 0;
  for (let x = 0; x < n; x += 97) {
    flipBit(file, x, x % 8);
    const r = check(dir);
    flipBit(file, x, x % 8);
    const pad = pads.find(([a, b]) => x >= a && x < b);
    const rec = recs.find((q) => x >= q.off && x < q.off + 7 + q.len)!;
    const msg = one(r, 'log-corrupt', logName, pad ? pad[0] : rec.off, `flip at ${x}`);
    if (rec === recs[recs.length - 1]) { inFinal++; assert.match(msg, /damage, not a torn write|length field is damaged|more than the/); }
    if (rec.type !== 1) inFragments++;
    cases++;
  }
  assert.ok(cases > 1000 && inFinal >= 15 && inFragments >= 500, `${cases} cases, ${inFinal} in the final record, ${inFragments} in fragments`);
  clean(check(dir), 'restored');
});

test('every bit of the final record\'s header flipped → log-corrupt (a flipped bit is not a torn write)', () => {
  const dir = copy(LOG_DB);
  const file = path.join(dir, logName);
  const { recs } = walkLog(readFileSync(file));
  const last = recs[recs.length - 1]!;
  for (let x = last.off; x < last.off + 7; x++) {
    for (let bit = 0; bit < 8; bit++) {
      flipBit(file, x, bit);
      one(check(dir), 'log-corrupt', logName, last.off, `header byte ${x - last.off} bit ${bit}`);
      flipBit(file, x, bit);
    }
  }
  // The last payload byte, and the last payload byte set to zero (a zero run too short to be a lost sector).
  const end = last.off + 7 + last.len;
  flipBit(file, end - 1, 3);
  assert.match(one(check(dir), 'log-corrupt', logName, last.off, 'last byte'), /fails its checksum \(nothing valid follows, but all its bytes are there/);
});

test('a flipped length bit in the final record: LevelDB silently drops it as if torn; the checker says corrupt', async () => {
  const dir = copy(LOG_DB);
  const file = path.join(dir, logName);
  const { recs } = walkLog(readFileSync(file));
  const last = recs[recs.length - 1]!;
  flipBit(file, last.off + 4, 4); // length + 16: runs past the end of the file
  const msg = one(check(dir), 'log-corrupt', logName, last.off, 'length + 16');
  assert.match(msg, /carry the record's valid checksum: its length field is damaged/);
  const got = await readAll(dir);
  const lastKey = key(written.size - 1);
  assert.not.ok(got.has(lastKey), 'LevelDB dropped the final record without a word');
  assert.is(got.size, written.size - 1);
});

test('a flip in the block padding → log-corrupt (LevelDB ignores it: nothing is lost, but the file was altered)', async () => {
  const dir = copy(LOG_DB);
  const file = path.join(dir, logName);
  for (let x = padAt; x < padAt + 3; x++) {
    flipBit(file, x, 6);
    const msg = one(check(dir), 'log-corrupt', logName, padAt, `padding byte ${x - padAt}`);
    assert.match(msg, /block padding at offset \d+ \(3 bytes before the 32 KiB block boundary\) is not zero; .*no record is lost/);
    flipBit(file, x, 6);
  }
  flipBit(file, padAt + 1, 0);
  assert.equal(await readAll(dir), written, 'LevelDB reads everything: the padding carries no data');
});

test('LevelDB silently drops a damaged record and the rest of its block; the checker names the one record', async () => {
  const dir = copy(LOG_DB);
  const file = path.join(dir, logName);
  const { logical } = walkLog(readFileSync(file));
  const rec = logical[10]![0]!;
  flipBit(file, rec.off + 20, 1);
  assert.match(one(check(dir), 'log-corrupt', logName, rec.off, 'record 10'), new RegExp(`record at offset ${rec.off} fails its checksum \\(a valid record follows at ${logical[11]![0]!.off}\\)`));
  const got = await readAll(dir); // opens without an error
  const lost = [...written.keys()].filter((k) => !got.has(k));
  const inBlock0 = logical.map((l, i) => ({ i, off: l[0]!.off })).filter((l) => l.i >= 10 && l.off < BLOCK).map((l) => key(l.i));
  assert.ok(inBlock0.length > 50, `${inBlock0.length} records after it in block 0`);
  assert.equal(lost, inBlock0, 'LevelDB lost every record from the damaged one to the end of its block');
});

test('a flipped bit in a fragment of a record spanning blocks → one problem, at that fragment', () => {
  const dir = copy(LOG_DB);
  const file = path.join(dir, logName);
  const { logical } = walkLog(readFileSync(file));
  const frags = logical.find((l) => l.length >= 3)!;
  for (const f of frags) {
    flipBit(file, f.off + 100, 2);
    const msg = one(check(dir), 'log-corrupt', logName, f.off, `fragment type ${f.type}`);
    if (f.type !== 2) assert.match(msg, new RegExp(`breaks the fragmented record starting at ${frags[0]!.off}`));
    flipBit(file, f.off + 100, 2);
  }
});

test('truncating the log inside its final record, header, or a fragmented record → torn, not a problem', async () => {
  const src = path.join(LOG_DB, logName);
  const n = statSync(src).size;
  const { recs, logical } = walkLog(readFileSync(src));
  const last = recs[recs.length - 1]!;
  const frags = logical.find((l) => l.length >= 3)!;
  const cuts: Array<[number, number, string]> = [
    [last.off + 7 + 1000, last.off, 'inside the final payload'],
    [last.off + 7 + last.len - 1, last.off, 'one byte short'],
    [last.off + 3, last.off, 'inside the final header'],
    [last.off, -1, 'at a record boundary (nothing torn)'],
    [frags[1]!.off + 500, frags[0]!.off, 'inside a MIDDLE fragment'],
    [frags[1]!.off, frags[0]!.off, 'after the FIRST fragment: continuation missing'],
    [frags[2]!.off + 7 + frags[2]!.len - 2, frags[0]!.off, 'inside the LAST fragment'],
  ];
  for (const [at, tornAt, why] of cuts) {
    const dir = copy(LOG_DB);
    truncateSync(path.join(dir, logName), at);
    const r = check(dir);
    if (tornAt < 0) { clean(r, why); continue; }
    tornOnly(r, logName, tornAt, at - tornAt, why);
    assert.ok(at < n);
    if (why === 'inside the final payload') {
      const got = await readAll(dir);
      assert.is(got.size, written.size - 1, 'LevelDB drops the torn record too (it was never acknowledged)');
    }
  }
});

test('every prefix of the log (cut at every 97th byte) is clean or one torn write, never a problem', () => {
  const src = path.join(LOG_DB, logName);
  const bytes = readFileSync(src);
  const { logical } = walkLog(bytes);
  const spans = logical.map((l) => ({ start: l[0]!.off, end: l[l.length - 1]!.off + 7 + l[l.length - 1]!.len }));
  const dir = copy(LOG_DB);
  const file = path.join(dir, logName);
  let torn = 0;
  for (let c = 1; c < bytes.length; c += 97) {
    writeFileSync(file, bytes.subarray(0, c));
    const r = check(dir);
    const span = spans.find((s) => s.start < c && c < s.end);
    if (span === undefined) clean(r, `cut at ${c}`);
    else { tornOnly(r, logName, span.start, c - span.start, `cut at ${c}`); torn++; }
  }
  assert.ok(torn > 1000, `${torn} torn cuts`);
});

test('every prefix ending at a sector boundary, the rest of the file zero (unwritten sectors) → torn', () => {
  const src = path.join(LOG_DB, logName);
  const bytes = readFileSync(src);
  const n = bytes.length;
  const { logical } = walkLog(bytes);
  const spans = logical.map((l) => ({ start: l[0]!.off, end: l[l.length - 1]!.off + 7 + l[l.length - 1]!.len }));
  const dir = copy(LOG_DB);
  const file = path.join(dir, logName);
  for (let c = 0; c < n; c += 512) {
    const b = Buffer.from(bytes);
    b.fill(0, c);
    writeFileSync(file, b);
    const span = spans.find((s) => s.start <= c && c < s.end)!;
    tornOnly(check(dir), logName, span.start, n - span.start, `zero from ${c}`);
  }
});

test('zeros at the end: 4096 appended → torn (the rule: zeros after a complete record are a torn write)', () => {
  const dir = copy(LOG_DB);
  const file = path.join(dir, logName);
  const n = statSync(file).size;
  appendFileSync(file, new Uint8Array(4096));
  assert.match(tornOnly(check(dir), logName, n, 4096, '4096 zeros'), /4096 zero bytes from offset \d+ to the end of the file/);
  for (const k of [1, 6, 7, 40_000]) {
    const d = copy(LOG_DB);
    appendFileSync(path.join(d, logName), new Uint8Array(k));
    tornOnly(check(d), logName, n, k, `${k} zeros`);
  }
});

test('zeros from a sector boundary inside the final record to EOF → torn; zeros not from one → corrupt', () => {
  const src = path.join(LOG_DB, logName);
  const n = statSync(src).size;
  const { recs } = walkLog(readFileSync(src));
  const last = recs[recs.length - 1]!;
  const sector = Math.ceil((last.off + 8) / 512) * 512;
  assert.ok(sector < n - 20, 'a sector boundary inside the final record');
  let dir = copy(LOG_DB);
  overwrite(path.join(dir, logName), sector, new Uint8Array(n - sector));
  assert.match(tornOnly(check(dir), logName, last.off, n - last.off, 'sector zeroed'), new RegExp(`zero from offset ${sector} \\(a sector boundary`));
  // …and the same with more zeros after (the file grew further)
  appendFileSync(path.join(dir, logName), new Uint8Array(5000));
  tornOnly(check(dir), logName, last.off, n + 5000 - last.off, 'sector zeroed, file grown');
  // Zeros from a non-aligned offset whose sector began inside the record: the sector was written, so its
  // zeros are data that fails the checksum.
  const lastSector = Math.floor((n - 1) / 512) * 512;
  assert.ok(lastSector < n - 10 && lastSector > last.off);
  dir = copy(LOG_DB);
  overwrite(path.join(dir, logName), n - 10, new Uint8Array(10));
  one(check(dir), 'log-corrupt', logName, last.off, 'last 10 bytes zeroed');
  appendFileSync(path.join(dir, logName), new Uint8Array(4096));
  one(check(dir), 'log-corrupt', logName, last.off, 'last 10 bytes zeroed, zeros appended');
});

test('a zeroed sector in the middle of the log → log-corrupt, a valid record follows', () => {
  const dir = copy(LOG_DB);
  const file = path.join(dir, logName);
  const { recs } = walkLog(readFileSync(file));
  const at = 512 * 20;
  overwrite(file, at, new Uint8Array(512));
  const rec = recs.find((q) => at >= q.off && at < q.off + 7 + q.len)!;
  const next = recs.find((q) => q.off >= at + 512)!;
  assert.match(one(check(dir), 'log-corrupt', logName, rec.off, 'zeroed sector'), new RegExp(`a valid record follows at ${next.off}`));
  // A zeroed header: LevelDB reads a zero-type record and skips the rest of the block without a word.
  const d2 = copy(LOG_DB);
  const r2 = recs[30]!;
  overwrite(path.join(d2, logName), r2.off, new Uint8Array(7));
  assert.match(one(check(d2), 'log-corrupt', logName, r2.off, 'zeroed header'), /zero type and length \(LevelDB skips the rest of the block/);
});

test('hand-made records with valid checksums: unknown type, orphan fragment, unfinished fragment, bad batch', async () => {
  const n = statSync(path.join(LOG_DB, logName)).size;
  const seq = 10_000;
  const good = record(1, batch(seq + 1, 'zz-after', 'ok'));
  const cases: Array<[Buffer, number, RegExp]> = [
    [Buffer.concat([record(9, batch(seq, 'zz', 'x')), good]), n, /record at offset \d+ has unknown type 9 \(a valid record follows/],
    [record(5, batch(seq, 'zz', 'x')), n, /unknown type 5 \(nothing valid follows, but all its bytes are there/],
    [Buffer.concat([record(3, batch(seq, 'zz', 'x')), good]), n, /MIDDLE fragment at offset \d+ has no FIRST fragment/],
    [Buffer.concat([record(4, batch(seq, 'zz', 'x')), good]), n, /LAST fragment at offset \d+ has no FIRST fragment/],
    [Buffer.concat([record(2, batch(seq, 'zz', 'x')), good]), n, /fragmented record starting at offset \d+ is never finished: a FULL record starts at/],
    [Buffer.concat([record(1, Buffer.from('tiny')), good]), n, /4 bytes, too small for a write batch/],
    [Buffer.concat([record(1, Buffer.concat([batch(seq, 'zz', 'x'), Buffer.from([1, 200])])), good]), n, /entry 1 has a bad key length/],
  ];
  for (const [bytes, at, re] of cases) {
    const dir = copy(LOG_DB);
    appendFileSync(path.join(dir, logName), bytes);
    assert.match(one(check(dir), 'log-corrupt', logName, at, re.source), re);
  }
  // LevelDB skips the malformed batch silently and stops replaying the log there.
  const dir = copy(LOG_DB);
  appendFileSync(path.join(dir, logName), Buffer.concat([record(1, Buffer.from('tiny')), good]));
  const got = await readAll(dir);
  assert.is(got.get(key(0)), written.get(key(0)));
  // A FIRST whose continuation never came, at the end of the newest log: torn.
  const d2 = copy(LOG_DB);
  appendFileSync(path.join(d2, logName), record(2, batch(seq, 'zz', 'x')));
  tornOnly(check(d2), logName, n, statSync(path.join(d2, logName)).size - n, 'FIRST at EOF');
});

test('a torn tail followed only by empty or all-zero newer logs is torn (a power cut after an open made the next log)', async () => {
  // An open replays the log into a table, starts an empty log and a new manifest; a power cut before CURRENT
  // names that manifest leaves the old manifest, the torn log and the empty newer log.
  const num = Number(logName.slice(0, 6));
  const { recs } = walkLog(readFileSync(path.join(LOG_DB, logName)));
  const last = recs[recs.length - 1]!;
  for (const [what, newerBytes] of [['empty', new Uint8Array(0)], ['4 KiB of zeros', new Uint8Array(4096)]] as const) {
    const dir = copy(LOG_DB);
    const newer = `${String(num + 3).padStart(6, '0')}.log`;
    const newest = `${String(num + 5).padStart(6, '0')}.log`;
    writeFileSync(path.join(dir, newer), newerBytes);
    writeFileSync(path.join(dir, newest), new Uint8Array(0));
    truncateSync(path.join(dir, logName), last.off + 100);
    const r = check(dir);
    assert.equal(r.problems, [], `${what}: ${JSON.stringify(r.problems, null, 1)}`);
    const torn = r.torn.map((t) => [t.file, t.offset, t.bytes]);
    const expect: Array<[string, number, number]> = [[logName, last.off, 100]];
    if (newerBytes.length > 0) expect.push([newer, 0, newerBytes.length]);
    assert.equal(torn, expect, `${what}: the old log's cut is torn`);
    const got = await readAll(dir);
    assert.is(got.size, written.size - 1, `${what}: LevelDB drops only the torn record`);
  }
  // A newer log with a record in it: the old log was finished before it, so its cut is corruption.
  const dir = copy(LOG_DB);
  const newer = `${String(num + 3).padStart(6, '0')}.log`;
  writeFileSync(path.join(dir, newer), new Uint8Array(0));
  cpSync(path.join(dir, logName), path.join(dir, `${String(num + 5).padStart(6, '0')}.log`));
  truncateSync(path.join(dir, logName), last.off + 100);
  const r = check(dir);
  assert.equal(r.problems.map((p) => [p.file, p.reason, p.offset]), [[logName, 'log-corrupt', last.off]]);
});

test('an older live log: any damage is corruption, even a cut-short tail; obsolete logs are ignored', async () => {
  const dir = copy(LOG_DB);
  const num = Number(logName.slice(0, 6));
  const newer = `${String(num + 4).padStart(6, '0')}.log`;
  cpSync(path.join(dir, logName), path.join(dir, newer)); // a newer live log (LevelDB replays both)
  writeFileSync(path.join(dir, '000001.log'), 'obsolete garbage'); // below the manifest's log number
  let r = check(dir);
  clean(r, 'two live logs');
  assert.equal(r.logs, [logName, newer], 'oldest first; the obsolete log is not listed');
  const { recs } = walkLog(readFileSync(path.join(dir, logName)));
  const last = recs[recs.length - 1]!;
  truncateSync(path.join(dir, logName), last.off + 100);
  truncateSync(path.join(dir, newer), last.off + 100);
  r = check(dir);
  assert.equal(r.problems.map((p) => [p.file, p.reason, p.offset]), [[logName, 'log-corrupt', last.off]]);
  assert.match(r.problems[0]!.message, new RegExp(`cut short by the end of the file .*only possible in the last log written to, and ${newer} after this one holds records`));
  assert.equal(r.torn.map((t) => [t.file, t.offset, t.bytes]), [[newer, last.off, 100]], 'the same cut in the newest log is torn');
  const d2 = copy(LOG_DB);
  cpSync(path.join(d2, logName), path.join(d2, newer));
  truncateSync(path.join(d2, newer), last.off + 100);
  tornOnly(check(d2), newer, last.off, 100, 'the newer log cut short is torn');
  assert.equal(await readAll(d2), written, 'LevelDB replays both logs');
});

test('a live log that cannot be read → unreadable with the errno', () => {
  const dir = copy(LOG_DB);
  rmSync(path.join(dir, logName));
  mkdirSync(path.join(dir, logName));
  const msg = one(check(dir), 'unreadable', logName, null, 'log is a directory');
  assert.match(msg, /EISDIR/);
  if (process.getuid?.() !== 0) {
    const d2 = copy(LOG_DB);
    chmodSync(path.join(d2, logName), 0o000);
    assert.match(one(check(d2), 'unreadable', logName, null, 'no permission'), /EACCES/);
  }
});

// ---------------------------------------------------------------------------------------------------------
// The MANIFEST

test('a flipped bit in the MANIFEST\'s first record → manifest-corrupt (LevelDB refuses to open)', async () => {
  const m = manifestOf(TABLE_DB);
  const { recs } = walkLog(readFileSync(path.join(TABLE_DB, m)));
  assert.ok(recs.length >= 3, 'several version edits');
  for (const x of [0, 4, 6, 7, 12, recs[0]!.len + 6]) {
    const dir = copy(TABLE_DB);
    flipBit(path.join(dir, m), x, 0);
    const r = check(dir);
    assert.is(r.problems[0]?.reason, 'manifest-corrupt', `flip at ${x}: ${JSON.stringify(r.problems)}`);
    assert.is(r.problems[0]!.offset, 0);
    assert.match(r.problems[0]!.message, new RegExp(`^${m}: record at offset 0 `));
    assert.equal(r.torn, []);
    if (x === 12) assert.match((await openError(dir)) ?? 'opened', /checksum|orruption/);
  }
  // A middle record: one problem, the others still give the live files.
  const dir = copy(TABLE_DB);
  flipBit(path.join(dir, m), recs[1]!.off + 8, 5);
  const r = check(dir);
  assert.is(r.problems[0]?.reason, 'manifest-corrupt');
  assert.is(r.problems[0]!.offset, recs[1]!.off);
});

test('the MANIFEST cut short or grown with zeros → torn; a valid record that is no version edit → manifest-corrupt', async () => {
  const m = manifestOf(TABLE_DB);
  const n = statSync(path.join(TABLE_DB, m)).size;
  const { recs } = walkLog(readFileSync(path.join(TABLE_DB, m)));
  const last = recs[recs.length - 1]!;
  let dir = copy(TABLE_DB);
  truncateSync(path.join(dir, m), last.off + 9);
  tornOnly(check(dir, { tables: 'footer' }), m, last.off, 9, 'manifest cut short');
  dir = copy(TABLE_DB);
  appendFileSync(path.join(dir, m), new Uint8Array(1000));
  tornOnly(check(dir), m, n, 1000, 'manifest + zeros');
  assert.ok((await openError(dir)) === null, 'LevelDB opens it');
  dir = copy(TABLE_DB);
  appendFileSync(path.join(dir, m), record(1, Buffer.from([0x63, 0x01, 0x02])));
  assert.match(one(check(dir), 'manifest-corrupt', m, n, 'not an edit'), /version edit in the record at offset \d+ does not parse: unknown tag 99/);
  dir = copy(TABLE_DB);
  appendFileSync(path.join(dir, m), record(1, Buffer.from([7, 9, 5])));
  assert.match(one(check(dir), 'manifest-corrupt', m, n, 'bad level'), /bad new-file entry/);
});

// ---------------------------------------------------------------------------------------------------------
// Tables

test('a deleted .ldb → table-missing with LevelDB\'s "1 missing files; NNNNNN.ldb" (LevelDB refuses too)', async () => {
  const dir = copy(TABLE_DB);
  const tables = check(dir).tables;
  const victim = tables[2]!;
  unlinkSync(path.join(dir, victim));
  const r = check(dir);
  assert.match(one(r, 'table-missing', victim, null, 'deleted'), new RegExp(`1 missing files; ${victim}$`));
  assert.equal(r.tables, tables, 'still listed as live');
  assert.match((await openError(dir)) ?? 'opened', /1 missing files/);
  unlinkSync(path.join(dir, tables[3]!));
  const r2 = check(dir);
  assert.equal(r2.problems.map((p) => p.reason), ['table-missing', 'table-missing']);
  assert.match(r2.problems[1]!.message, new RegExp(`2 missing files; ${victim}, ${tables[3]}$`));
  // A table LevelDB's older name accepts is not missing.
  const d2 = copy(TABLE_DB);
  renameSync(path.join(d2, victim), path.join(d2, victim.replace('.ldb', '.sst')));
  const r3 = check(d2);
  clean(r3, '.sst');
  assert.ok(r3.tables.includes(victim.replace('.ldb', '.sst')));
});

test('a truncated .ldb → table-truncated; a grown one too (but its recorded bytes still check)', () => {
  const dir = copy(TABLE_DB);
  const victim = check(dir).tables[1]!;
  const size = statSync(path.join(dir, victim)).size;
  truncateSync(path.join(dir, victim), size - 100);
  assert.match(one(check(dir), 'table-truncated', victim, size - 100, 'truncated'), new RegExp(`is ${size - 100} bytes but MANIFEST-\\d+ records ${size} bytes \\(truncated at offset ${size - 100}\\)`));
  one(check(dir, { tables: 'footer' }), 'table-truncated', victim, size - 100, 'truncated, footer mode');
  const d2 = copy(TABLE_DB);
  appendFileSync(path.join(d2, victim), 'more');
  assert.match(one(check(d2), 'table-truncated', victim, size, 'grown'), /grown/);
});

test('a flipped bit anywhere in a snappy table → table-corrupt in that file (every byte is covered)', () => {
  const dir = copy(TABLE_DB);
  const victim = check(dir).tables[0]!;
  const file = path.join(dir, victim);
  const size = statSync(file).size;
  let cases = 0;
  for (let x = 0; x < size; x += 7) {
    flipBit(file, x, x % 8);
    const r = check(dir);
    flipBit(file, x, x % 8);
    assert.ok(r.problems.length >= 1, `flip at ${x} found`);
    for (const p of r.problems) {
      assert.is(p.file, victim);
      assert.ok(p.reason === 'table-corrupt' && p.offset !== null && p.message.startsWith(`${victim}: `), JSON.stringify(p));
    }
    assert.ok(r.problems[0]!.offset! <= x, `flip at ${x}: ${r.problems[0]!.message}`);
    cases++;
  }
  assert.ok(cases > 300);
  // The footer's magic number
  flipBit(file, size - 1, 0);
  assert.match(one(check(dir, { tables: 'footer' }), 'table-corrupt', victim, size - 48, 'magic'), /bad magic number/);
});

test('a flipped bit in a data block: LevelDB returns a wrong value silently; the checker names file and block', async () => {
  const dir = copy(RAW_DB);
  const report = check(dir);
  let hit: { table: string; pos: number; i: number } | null = null;
  for (const table of report.tables) {
    const b = readFileSync(path.join(dir, table));
    const i = 123;
    const at = b.indexOf(`v${i}:xxxx`);
    if (at >= 0) { hit = { table, pos: at + 20, i }; break; }
  }
  assert.ok(hit, 'value 123 is in a live table');
  const { table, pos, i } = hit;
  const file = path.join(dir, table);
  const blocks = tableBlocks(readFileSync(file));
  const blk = blocks.data.find(([o, s]) => pos >= o && pos < o + s)!;
  assert.ok(blocks.data.length >= 2 && blk !== undefined);
  flipBit(file, pos, 0); // 'x' → 'y'
  const msg = one(check(dir), 'table-corrupt', table, blk[0], 'value byte');
  assert.match(msg, new RegExp(`^${table}: data block at offset ${blk[0]} \\(${blk[1]} bytes\\) fails its checksum$`));
  clean(check(dir, { tables: 'footer' }), 'footer mode does not read data blocks');
  const got = await readAll(dir);
  const v = got.get(key(i))!;
  assert.is(v.length, 150);
  assert.is.not(v, `v${i}:`.padEnd(150, 'x'), 'LevelDB returned the damaged value');
  assert.is(v[20], 'y');
  // Index block and metaindex block damage is found in footer mode too; the filter block only in full mode.
  const d2 = copy(RAW_DB);
  flipBit(path.join(d2, table), blocks.index[0] + 3, 1);
  one(check(d2, { tables: 'footer' }), 'table-corrupt', table, blocks.index[0], 'index block');
  const d3 = copy(RAW_DB);
  flipBit(path.join(d3, table), blocks.meta[0] + 3, 1);
  assert.match(one(check(d3, { tables: 'footer' }), 'table-corrupt', table, blocks.meta[0], 'metaindex'), /metaindex block/);
  const d4 = copy(RAW_DB);
  const lastData = blocks.data[blocks.data.length - 1]!;
  const filterAt = lastData[0] + lastData[1] + 5;
  flipBit(path.join(d4, table), filterAt + 2, 1);
  assert.match(one(check(d4), 'table-corrupt', table, filterAt, 'filter'), /meta block at offset/);
  clean(check(d4, { tables: 'footer' }), 'filter not read in footer mode');
});

test('several kinds of damage at once: all reported, in file order', () => {
  const dir = copy(TABLE_DB);
  const m = manifestOf(dir);
  const log = only(dir, '.log');
  const tables = check(dir).tables;
  appendFileSync(path.join(dir, log), Buffer.concat([record(7, Buffer.from('x')), record(1, batch(1, 'a', 'b'))]));
  unlinkSync(path.join(dir, tables[0]!));
  truncateSync(path.join(dir, tables[1]!), 100);
  flipBit(path.join(dir, tables[2]!), 5, 0);
  const r = check(dir);
  assert.equal(r.problems.map((p) => [p.file, p.reason]), [
    [log, 'log-corrupt'], [tables[0], 'table-missing'], [tables[1], 'table-truncated'], [tables[2], 'table-corrupt'],
  ]);
  assert.is(r.manifest, m);
});

test.run();
