// The damage corpus: a journal of a few hundred acknowledged records, built by the driver on a ModelBackend,
// then damaged on copies in every way an operator or a disk can — flipped bits in LevelDB's log and tables,
// truncations, deleted or garbage LevelDB files, re-encoded and deleted and swapped records, foreign keys, a
// deleted meta key, a re-hashed chain whose ts goes backwards, a chain-valid record the model cannot apply —
// and every case is run through `verify`, `dump --verify`, `recover --dry-run` and a device command.
// For each: the documented exit code and error code, the file/key/seq named, the directory's bytes unchanged
// after every read-only command, the kernel (the model backend) unchanged unless the journal verified.
// Property: a case that `verify` passes has lost no acknowledged record. Cases are generated from a seed.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import {
  chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, unlinkSync, writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClassicLevel } from 'classic-level';
import {
  CHECKPOINT_PREFIX, CHUNK_PREFIX, HEAD_KEY, META_KEY, chunkKey, decodeCheckpoint, encodeCheckpoint, encodeHead, encodeRecord, recordFromDecoded, sha256,
  splitChunk, type JournalRecord, type StoredCheckpoint,
} from '@thinjournal/spec';
import { fromPlain, stateHash } from '@thinjournal/model';
import { Journal } from '@thinjournal/journal';
import { ModelBackend } from '@thinjournal/dm';
import { init } from '@thinjournal/driver';
import { main, EXIT, type Io } from '../src/index.js';

const BIN = fileURLToPath(new URL('../../bin/thinjournal.js', import.meta.url));
const OPTIONS = ['dm.loopdatasize=256M', 'dm.loopmetadatasize=16M', 'dm.basesize=64M', 'dm.fs=ext4'];
const SEED = 0x7e11;

/** mulberry32: a small deterministic generator, so that every run tries the same cases. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function capture(backend?: ModelBackend): Io & { out: () => string; err: () => string } {
  let out = '', err = '';
  return { stdout: { write: (s: string) => (out += s), isTTY: false }, stderr: { write: (s: string) => (err += s), isTTY: false }, env: {}, ...(backend ? { backend } : {}), out: () => out, err: () => err };
}

/** Names and bytes of every file under `dir`: what "unchanged" means. */
function fingerprint(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = path.join(d, name);
      const st = statSync(p);
      h.update(`${path.relative(dir, p)}\0${st.isDirectory() ? 'd' : 'f'}\0`);
      if (st.isDirectory()) walk(p);
      else h.update(readFileSync(p));
    }
  };
  if (existsSync(dir)) walk(dir);
  return h.digest('hex');
}

interface Built { readonly home: string; readonly backend: ModelBackend; readonly records: JournalRecord[] }

/**
 * The same history every time (the backend's thin ids and transaction ids follow from it): a pool, 80 layers
 * in chains, some removed, some mounted. A few hundred records, spread over LevelDB's tables and its log
 * (each driver start converts the previous log into a table; the last session stays in the log).
 */
async function build(root: string): Promise<Built> {
  const home = path.join(root, 'home');
  const backend = new ModelBackend();
  const session = async (fn: (d: Awaited<ReturnType<typeof init>>) => Promise<void>) => {
    const d = await init(home, OPTIONS, {}, { backend, workers: false, actor: 'damage-test', checkpointEvery: 60 });
    try { await fn(d); } finally { await d.close(); }
  };
  await session(async (d) => { for (let i = 0; i < 30; i++) await d.create(`l${i}`, i === 0 ? '' : `l${i - 1}`); });
  await session(async (d) => {
    for (let i = 30; i < 60; i++) await d.create(`l${i}`, `l${i % 7}`);
    await d.remove('l59');
    await d.remove('l58');
  });
  await session(async (d) => {
    for (let i = 60; i < 80; i++) await d.create(`l${i}`, 'l3');
    await d.get('l75');
    await d.remove('l79');
  });
  const j = await Journal.openReader(path.join(home, 'journal'));
  try {
    return { home, backend, records: await j.read() };
  } finally {
    await j.close();
  }
}

type Damage = (journalDir: string) => Promise<void> | void;
interface Case {
  readonly name: string;
  readonly damage: Damage;
  /** What must be named: a file name, a key, or a seq (as text in the error). */
  readonly names?: RegExp;
  /**
   * Damage only a full verification can see: a checkpoint whose state, digest and stateHash were all
   * rewritten consistently. Paths that verify O(tail) trust a checkpoint bound to the chain by its record's
   * hash (format.md §8); `verify` and `dump --verify` replay everything and must name it.
   */
  readonly fullOnly?: boolean;
}

function files(dir: string, re: RegExp): string[] {
  return readdirSync(dir).filter((n) => re.test(n)).sort();
}

function flipBit(file: string, offset: number, bit: number): void {
  const b = readFileSync(file);
  b[offset] = b[offset]! ^ (1 << bit);
  writeFileSync(file, b);
}

/** Rewrites the LevelDB database behind the journal at the record level (the way a tamperer would). */
async function withDb(dir: string, fn: (db: ClassicLevel<string, Uint8Array>) => Promise<void>): Promise<void> {
  const db = new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
  await db.open();
  try { await fn(db); } finally { await db.close(); }
}

async function chunks(db: ClassicLevel<string, Uint8Array>): Promise<[string, Uint8Array][]> {
  return db.iterator({ gte: CHUNK_PREFIX, lt: 's' }).all();
}

/** The chunk holding seq and the index of its record. */
async function locate(db: ClassicLevel<string, Uint8Array>, seq: number): Promise<{ key: string; value: Uint8Array; index: number; recs: JournalRecord[] }> {
  for (const [key, value] of await chunks(db)) {
    const { entries } = splitChunk(value);
    const recs = entries.map((e) => recordFromDecoded(e.raw, value.subarray(e.start, e.end)));
    const index = recs.findIndex((r) => r.seq === seq);
    if (index >= 0) return { key, value, index, recs };
  }
  throw new Error(`no record ${seq}`);
}

function encode(r: JournalRecord, prev: string): Buffer {
  return encodeRecord({ seq: r.seq, txId: r.txId, ts: r.ts, type: r.type, actor: r.actor, reason: r.reason, body: r.body, prev: Buffer.from(prev, 'hex') });
}

/** Re-encodes every record from `fromSeq` on with `change` applied, re-hashing the rest of the chain and the head. */
async function rewriteChain(db: ClassicLevel<string, Uint8Array>, fromSeq: number, change: (r: JournalRecord) => JournalRecord): Promise<void> {
  let prev: string | null = null;
  let last: { seq: number; hash: string } | null = null;
  for (const [key, value] of await chunks(db)) {
    const { entries } = splitChunk(value);
    const parts: Buffer[] = [];
    let changed = false;
    for (const e of entries) {
      const r = recordFromDecoded(e.raw, value.subarray(e.start, e.end));
      if (r.seq < fromSeq) { parts.push(Buffer.from(value.subarray(e.start, e.end))); prev = r.hash; last = { seq: r.seq, hash: r.hash }; continue; }
      const bytes = encode(change(r), prev ?? r.prev);
      parts.push(bytes);
      prev = sha256(bytes).toString('hex');
      last = { seq: r.seq, hash: prev };
      changed = true;
    }
    if (changed) await db.put(key, Buffer.concat(parts));
  }
  if (last) await db.put(HEAD_KEY, encodeHead(last));
}

function corpus(records: readonly JournalRecord[]): Case[] {
  const rand = rng(SEED);
  const pick = (n: number) => Math.floor(rand() * n);
  const head = records[records.length - 1]!.seq;
  const out: Case[] = [];
  // LevelDB's write-ahead log: single flipped bits at seeded offsets (the last session's records live there).
  for (let i = 0; i < 10; i++) {
    const u = rand(), bit = pick(8);
    out.push({
      name: `flip bit ${bit} at ${(u * 100).toFixed(1)}% of the .log`, names: /\.log/,
      damage: (d) => { const f = path.join(d, files(d, /\.log$/).at(-1)!); flipBit(f, Math.floor(u * statSync(f).size), bit); },
    });
  }
  // Tables: flipped bits, truncation, deletion.
  for (let i = 0; i < 10; i++) {
    const u = rand(), v = rand(), bit = pick(8);
    out.push({
      name: `flip bit ${bit} at ${(v * 100).toFixed(1)}% of table #${Math.floor(u * 100)}%`, names: /\.ldb/,
      damage: (d) => { const t = files(d, /\.ldb$/); const f = path.join(d, t[Math.floor(u * t.length)]!); flipBit(f, Math.floor(v * statSync(f).size), bit); },
    });
  }
  for (const frac of [0.5, 0.9]) {
    out.push({ name: `truncate a table to ${frac * 100}%`, names: /\.ldb/, damage: (d) => { const f = path.join(d, files(d, /\.ldb$/)[0]!); truncateSync(f, Math.floor(statSync(f).size * frac)); } });
  }
  out.push({ name: 'delete a table', names: /missing files; \d+\.ldb/, damage: (d) => unlinkSync(path.join(d, files(d, /\.ldb$/)[0]!)) });
  out.push({ name: 'delete the newest table', names: /missing files; \d+\.ldb/, damage: (d) => unlinkSync(path.join(d, files(d, /\.ldb$/).at(-1)!)) });
  // The log cut short: a torn tail (ERR_JOURNAL_TORN), never silently accepted.
  for (const cut of [1, 7, 100, 600]) {
    out.push({ name: `truncate the .log by ${cut} bytes`, names: /\.log/, damage: (d) => { const f = path.join(d, files(d, /\.log$/).at(-1)!); truncateSync(f, statSync(f).size - cut); } });
  }
  out.push({ name: 'delete the MANIFEST', names: /MANIFEST|CURRENT/, damage: (d) => unlinkSync(path.join(d, files(d, /^MANIFEST-/)[0]!)) });
  out.push({ name: 'garbage in CURRENT', names: /CURRENT/, damage: (d) => writeFileSync(path.join(d, 'CURRENT'), 'garbage\n') });
  out.push({ name: 'delete CURRENT', names: /CURRENT/, damage: (d) => unlinkSync(path.join(d, 'CURRENT')) });
  out.push({ name: 'flip a bit in the MANIFEST', names: /MANIFEST/, damage: (d) => flipBit(path.join(d, files(d, /^MANIFEST-/)[0]!), 12, 3) });
  // Records: re-encoded with a changed field (prev kept), at seeded seqs.
  for (let i = 0; i < 6; i++) {
    const seq = 1 + pick(head - 1);
    out.push({
      name: `record ${seq} re-encoded with another actor`, names: new RegExp(`seq ${Math.max(1, seq - 1)}|seq ${seq}`),
      damage: (d) => withDb(d, async (db) => {
        const { key, index, recs } = await locate(db, seq);
        const parts = recs.map((r, k) => (k === index ? encode({ ...r, actor: 'mallory' }, r.prev) : encode(r, r.prev)));
        await db.put(key, Buffer.concat(parts));
      }),
    });
  }
  // Keys: a chunk deleted, two swapped, the last deleted, foreign keys, meta and head deleted.
  for (let i = 0; i < 3; i++) {
    const u = rand();
    out.push({
      name: `delete chunk #${(u * 100).toFixed(0)}%`, names: /seq \d+/,
      damage: (d) => withDb(d, async (db) => { const cs = await chunks(db); await db.del(cs[Math.floor(u * (cs.length - 1))]![0]); }),
    });
  }
  out.push({ name: 'delete the last chunk', names: /seq \d+/, damage: (d) => withDb(d, async (db) => { await db.del((await chunks(db)).at(-1)![0]); }) });
  for (let i = 0; i < 2; i++) {
    const u = rand();
    out.push({
      name: `swap two chunks' values #${(u * 100).toFixed(0)}%`, names: /seq \d+/,
      damage: (d) => withDb(d, async (db) => {
        const cs = await chunks(db);
        const a = Math.floor(u * (cs.length - 2));
        await db.batch([{ type: 'put', key: cs[a]![0], value: cs[a + 1]![1] }, { type: 'put', key: cs[a + 1]![0], value: cs[a]![1] }]);
      }),
    });
  }
  for (const key of ['a', 'x', 'zz', 'd0', 'hh', 'r12']) {
    out.push({ name: `foreign key ${JSON.stringify(key)}`, names: new RegExp(`"${key}"`), damage: (d) => withDb(d, (db) => db.put(key, Buffer.from('x'))) });
  }
  out.push({ name: 'delete the meta key', names: /"m"|meta/, damage: (d) => withDb(d, (db) => db.del(META_KEY)) });
  out.push({ name: 'delete the head key', names: /head/, damage: (d) => withDb(d, (db) => db.del(HEAD_KEY)) });
  // Not damage: LevelDB's own diagnostics and its lock file hold no data (the journal must still verify,
  // with nothing missing, and take new operations).
  out.push({ name: 'delete LevelDB\'s info LOG', damage: (d) => { for (const f of files(d, /^LOG(\.old)?$/)) unlinkSync(path.join(d, f)); } });
  out.push({ name: 'garbage appended to LevelDB\'s info LOG', damage: (d) => writeFileSync(path.join(d, 'LOG'), 'garbage\n', { flag: 'a' }) });
  out.push({ name: 'delete the LOCK file', damage: (d) => unlinkSync(path.join(d, 'LOCK')) });
  // Checkpoints: the stored state altered (its digest recomputed), with or without a matching stateHash.
  const rewriteCheckpoint = (d: string, change: (c: StoredCheckpoint) => StoredCheckpoint) => withDb(d, async (db) => {
    const cps = await db.iterator({ gte: CHECKPOINT_PREFIX, lt: 'd' }).all();
    assert.ok(cps.length >= 2, 'the history has checkpoints');
    const [key, value] = cps.at(-1)!;
    await db.put(key, encodeCheckpoint(change(decodeCheckpoint(value))));
  });
  const dropDevice = (state: unknown): Record<string, unknown> => {
    const o = state as { devices: { hash: string; parentHash: string | null }[] } & Record<string, unknown>;
    const leaf = o.devices.find((x) => x.hash !== '' && !o.devices.some((y) => y.parentHash === x.hash))!;
    return { ...o, devices: o.devices.filter((x) => x !== leaf) };
  };
  out.push({ name: 'latest checkpoint: a device dropped from its state, stateHash kept', names: /checkpoint|state/, damage: (d) => rewriteCheckpoint(d, (c) => ({ ...c, state: dropDevice(c.state) })) });
  out.push({ name: 'latest checkpoint: garbage state', names: /checkpoint|state/, damage: (d) => rewriteCheckpoint(d, (c) => ({ ...c, state: { x: 1 } })) });
  out.push({
    name: 'latest checkpoint: a device dropped from its state, stateHash recomputed', names: /checkpoint|state/, fullOnly: true,
    damage: (d) => rewriteCheckpoint(d, (c) => { const state = dropDevice(c.state); return { ...c, state, stateHash: stateHash(fromPlain(state)) }; }),
  });
  // A consistent, re-hashed chain that breaks the format's rules or the model's.
  {
    const seq = 2 + pick(head - 3);
    out.push({
      name: `ts goes backwards at ${seq} (chain re-hashed)`, names: new RegExp(`seq ${seq}`),
      damage: (d) => withDb(d, (db) => rewriteChain(db, seq, (r) => (r.seq === seq ? { ...r, ts: r.ts - 86_400_000 } : r))),
    });
  }
  out.push({
    name: 'a chain-valid DeviceDeleted of a device that does not exist, at the head', names: new RegExp(`seq ${head + 1}`),
    damage: (d) => withDb(d, async (db) => {
      const [key, value] = (await chunks(db)).at(-1)!;
      const { entries } = splitChunk(value);
      const e = entries.at(-1)!;
      const last = recordFromDecoded(e.raw, value.subarray(e.start, e.end));
      assert.is(last.seq, head, `${key} ends at the head`);
      const bytes = encodeRecord({ seq: head + 1, txId: last.txId, ts: last.ts, type: 'DeviceDeleted', actor: 'mallory', reason: '', body: { hash: 'no-such-device', deviceId: 9999 }, prev: Buffer.from(last.hash, 'hex') });
      await db.batch([{ type: 'put', key: chunkKey(head + 1), value: bytes }, { type: 'put', key: HEAD_KEY, value: encodeHead({ seq: head + 1, hash: sha256(bytes).toString('hex') }) }]);
    }),
  });
  return out;
}

interface Outcome { readonly code: number; readonly out: string; readonly err: string }
async function run(args: string[], backend: ModelBackend): Promise<Outcome> {
  const io = capture(backend);
  const code = await main(args, io);
  return { code, out: io.out(), err: io.err() };
}

test('damage corpus: every case detected and named, or verified with nothing acknowledged lost; read-only commands change no byte', async () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-damage-'));
  try {
    const pristine = await build(path.join(root, 'pristine'));
    assert.ok(pristine.records.length >= 200, `a few hundred records (${pristine.records.length})`);
    assert.ok(files(path.join(pristine.home, 'journal'), /\.ldb$/).length >= 1, 'the history reached LevelDB tables');
    assert.ok(files(path.join(pristine.home, 'journal'), /\.log$/).length >= 1, 'and its log');
    const cases = corpus(pristine.records);
    assert.ok(cases.length >= 40, `≥ 40 cases (${cases.length})`);
    let detected = 0, unchanged = 0, passed = 0, fullOnlyCases = 0;
    const intact: string[] = [];
    const failures: string[] = [];
    for (const [i, c] of cases.entries()) {
      const b = await build(path.join(root, `case-${i}`));
      const dir = path.join(b.home, 'journal');
      // Read through a reader: opening the directory with LevelDB itself would move its log into a table.
      const latestCheckpoint = await (async () => {
        const j = await Journal.openReader(dir);
        try { return (await j.latestCheckpoint())?.seq ?? 0; } finally { await j.close(); }
      })();
      await c.damage(dir);
      const before = fingerprint(b.home);
      const kernelBefore = JSON.stringify(await b.backend.poolMetadata(pristineName(b)));
      const fail = (what: string) => failures.push(`${c.name}: ${what}`);
      const verify = await run(['verify', '--home', b.home, '--json'], b.backend);
      // Damage at or before the latest checkpoint is outside the O(tail) walk of every path but a full verify.
      const verdictSeq = (() => { try { return Number(JSON.parse(verify.out).seq) || 0; } catch { return 0; } })();
      const fullOnly = c.fullOnly === true || (verdictSeq > 0 && verdictSeq <= latestCheckpoint);
      if (fullOnly) fullOnlyCases++;
      const sameAfterVerify = fingerprint(b.home) === before;
      const dump = await run(['dump', '--home', b.home, '--verify'], b.backend);
      const sameAfterDump = fingerprint(b.home) === before;
      const dry = await run(['recover', '--home', b.home, '--dry-run'], b.backend);
      const sameAfterDry = fingerprint(b.home) === before;
      const others: string[] = [];
      for (const args of [['dump'], ['tail', '-n', '5'], ['ls'], ['lineage'], ['replay', '--dry-run'], ['verify', '--kernel']]) {
        const r = await run([...args, '--home', b.home], b.backend);
        if (fingerprint(b.home) !== before) others.push(args.join(' '));
        if (verify.code === EXIT.CORRUPT && !fullOnly && args[0] !== 'tail' && args[0] !== 'dump' && r.code !== EXIT.CORRUPT) fail(`${args.join(' ')} exit ${r.code} on a damaged journal: ${r.err.trim()}`);
      }
      if (sameAfterVerify && sameAfterDump && sameAfterDry && others.length === 0) unchanged++;
      else fail(`read-only commands changed the directory (verify ${sameAfterVerify}, dump --verify ${sameAfterDump}, recover --dry-run ${sameAfterDry}${others.length ? `; also ${others.join(', ')}` : ''})`);
      const create = await run(['create', 'newlayer', '--home', b.home], b.backend);
      const kernelAfter = JSON.stringify(await b.backend.poolMetadata(pristineName(b)));
      if (verify.code === EXIT.CORRUPT) {
        detected++;
        // The JSON verdict names a seq as "seq":N; the text forms say "seq N".
        const text = (verify.out + verify.err).replace(/"seq":(\d+)/g, 'seq $1');
        if (c.names && !c.names.test(text)) fail(`verify did not name ${c.names}: ${text.trim()}`);
        if (!/"kind":"(corrupt|torn)"|ERR_JOURNAL_(CORRUPT|TORN)/.test(text)) fail(`verify gave no verdict: ${text.trim()}`);
        if (dump.code !== EXIT.CORRUPT || !/ERR_JOURNAL_(CORRUPT|TORN)/.test(dump.err)) fail(`dump --verify: exit ${dump.code}: ${dump.err.trim()}`);
        if (!fullOnly) {
          if (dry.code !== EXIT.CORRUPT || !/ERR_(JOURNAL_(CORRUPT|TORN)|STATE_HASH_MISMATCH)/.test(dry.err)) fail(`recover --dry-run: exit ${dry.code}: ${dry.err.trim()} ${dry.out.trim()}`);
          if (create.code !== EXIT.CORRUPT || !/ERR_(JOURNAL_(CORRUPT|TORN)|STATE_HASH_MISMATCH)/.test(create.err)) fail(`create: exit ${create.code}: ${create.err.trim()}`);
          if (kernelAfter !== kernelBefore) fail('the kernel changed although the journal is damaged');
        }
      } else if (verify.code === EXIT.OK) {
        passed++;
        intact.push(c.name);
        // Nothing acknowledged may be missing from a journal that verifies.
        const j = await Journal.openReader(dir);
        try {
          const got = new Map((await j.read()).map((r) => [r.seq, r.hash]));
          const lost = pristine.records.filter((r) => got.get(r.seq) === undefined);
          if (lost.length) fail(`verify passed but ${lost.length} acknowledged records are missing (first seq ${lost[0]!.seq})`);
        } finally {
          await j.close();
        }
        if (dry.code !== EXIT.OK) fail(`verify passed, recover --dry-run exit ${dry.code}: ${dry.err.trim()}`);
        if (create.code !== EXIT.OK) fail(`verify passed, create exit ${create.code}: ${create.err.trim()}`);
      } else {
        fail(`verify exit ${verify.code}: ${verify.err.trim()} ${verify.out.trim()}`);
      }
      rmSync(path.join(root, `case-${i}`), { recursive: true, force: true });
    }
    console.log(`  damage corpus (seed ${SEED}): ${cases.length} cases, ${detected} detected (${fullOnlyCases} of them before the latest checkpoint: by a full verify only), ${passed} verified intact, ${unchanged} unchanged by read-only commands`);
    console.log(`  verified intact: ${intact.join('; ')}`);
    assert.ok(detected - fullOnlyCases >= 30, 'most damage is in reach of the O(tail) checks too');
    assert.equal(failures, []);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

function pristineName(b: Built): string {
  const init = b.records.find((r) => r.type === 'PoolInitialised');
  return String(init!.body.poolName);
}

test('no journal is not a corrupt journal: missing, a file, empty, not a journal, unreadable — exit 1, own code, nothing created', async () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-nojournal-'));
  try {
    const homes: [string, string, (home: string) => void][] = [
      ['missing home', 'ERR_NO_JOURNAL', () => {}],
      ['home is a file', 'ERR_NOT_A_JOURNAL', (h) => writeFileSync(h, 'x')],
      ['journal is a file', 'ERR_NOT_A_JOURNAL', (h) => { mkdirSync(h); writeFileSync(path.join(h, 'journal'), 'x'); }],
      ['empty journal directory', 'ERR_NO_JOURNAL', (h) => mkdirSync(path.join(h, 'journal'), { recursive: true })],
      ['a directory that is not a journal', 'ERR_NOT_A_JOURNAL', (h) => { mkdirSync(path.join(h, 'journal'), { recursive: true }); writeFileSync(path.join(h, 'journal', 'notes.txt'), 'hello'); }],
    ];
    for (const [name, code, make] of homes) {
      const home = path.join(root, name.replace(/ /g, '-'));
      make(home);
      const before = fingerprint(root);
      for (const args of [['verify'], ['dump'], ['tail'], ['ls'], ['lineage'], ['recover', '--dry-run'], ['recover'], ['replay', '--dry-run'], ['status'], ['create', 'x']]) {
        const r = await run([...args, '--home', home], new ModelBackend());
        // A device command on a home without a journal says what to do about it (init first).
        const want = code === 'ERR_NO_JOURNAL' && (args[0] === 'status' || args[0] === 'create') ? 'ERR_POOL_NOT_INITIALISED' : code;
        assert.is(r.code, EXIT.ERROR, `${name}: ${args.join(' ')}: exit ${r.code}: ${r.err}`);
        assert.match(r.err, new RegExp(`^${want}: `), `${name}: ${args.join(' ')}: ${r.err}`);
        assert.is(fingerprint(root), before, `${name}: ${args.join(' ')} created or changed something`);
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('an unreadable journal (EACCES, as an unprivileged user) is ERR_JOURNAL_ACCESS, exit 1', async () => {
  if (process.getuid?.() !== 0) {
    console.log('  skipped: needs root to run the command as another user');
    return;
  }
  const root = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-eacces-'));
  try {
    chmodSync(root, 0o755);
    const built = await build(root);
    chmodSync(built.home, 0o755);
    chmodSync(path.join(built.home, 'journal'), 0o700);
    const before = fingerprint(built.home);
    for (const args of [['verify'], ['dump'], ['ls']]) {
      const r = spawnSync(process.execPath, [BIN, ...args, '--home', built.home], { uid: 65534, gid: 65534, encoding: 'utf8', env: { ...process.env, HOME: '/tmp' } });
      assert.is(r.status, EXIT.ERROR, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^ERR_JOURNAL_ACCESS: .*EACCES/, `${args.join(' ')}: ${r.stderr}`);
    }
    assert.is(fingerprint(built.home), before);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('readers never take the writer\'s lock: dump and ls while a writer holds the journal, and the writer goes on', async () => {
  const root = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-readers-'));
  try {
    const built = await build(root);
    const d = await init(built.home, OPTIONS, {}, { backend: built.backend, workers: false, actor: 'damage-test' });
    try {
      for (let i = 0; i < 5; i++) {
        const reads = Promise.all([run(['dump', '--home', built.home], built.backend), run(['ls', '--home', built.home], built.backend), run(['verify', '--home', built.home], built.backend)]);
        await d.create(`w${i}`, 'l1');
        for (const r of await reads) assert.is(r.code, EXIT.OK, r.err);
      }
    } finally {
      await d.close();
    }
    const j = await Journal.open(path.join(built.home, 'journal'));
    await j.close();
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test.run();
