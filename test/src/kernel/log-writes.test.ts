// The log-writes reader and replayer on synthetic logs (no kernel): a log is built here byte by byte from the
// documented layout, independently of the reader; replaying it to every entry must give the image that the
// entries, applied by hand, give; bad super blocks, unknown flags and truncated logs are refused by name.
import { mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LOG_DISCARD, LOG_FLUSH, LOG_FUA, LOG_MARK, LOG_METADATA, LogFormatError, Replayer, flagNames, isFlushPoint, openReplay, parseSuper, readLog, type ReadAt } from './log-writes.js';

type Spec =
  | { write: number; data: Buffer; flags?: number }
  | { flush: true }
  | { discard: number; sectors: number }
  | { mark: string };

/** A log as the target lays it out: super block, then per entry a header block and, for writes, the data. */
function buildLog(specs: Spec[], S = 512, opts: { nrEntries?: number; magic?: bigint; version?: bigint } = {}): Buffer {
  const parts: Buffer[] = [];
  const sup = Buffer.alloc(S);
  sup.writeBigUInt64LE(opts.magic ?? 0x6a736677736872n, 0);
  sup.writeBigUInt64LE(opts.version ?? 1n, 8);
  sup.writeBigUInt64LE(BigInt(opts.nrEntries ?? specs.length), 16);
  sup.writeUInt32LE(S, 24);
  parts.push(sup);
  for (const s of specs) {
    const h = Buffer.alloc(S);
    if ('write' in s) {
      assert.is(s.data.length % S, 0);
      h.writeBigUInt64LE(BigInt(s.write), 0);
      h.writeBigUInt64LE(BigInt(s.data.length / S), 8);
      h.writeBigUInt64LE(BigInt(s.flags ?? 0), 16);
      parts.push(h, s.data);
    } else if ('flush' in s) {
      h.writeBigUInt64LE(BigInt(LOG_FLUSH), 16);
      parts.push(h);
    } else if ('discard' in s) {
      h.writeBigUInt64LE(BigInt(s.discard), 0);
      h.writeBigUInt64LE(BigInt(s.sectors), 8);
      h.writeBigUInt64LE(BigInt(LOG_DISCARD), 16);
      parts.push(h);
    } else {
      h.writeBigUInt64LE(BigInt(LOG_MARK), 16);
      h.writeBigUInt64LE(BigInt(s.mark.length), 24);
      h.write(s.mark, 32, 'utf8');
      parts.push(h);
    }
  }
  return Buffer.concat(parts);
}

const reader = (b: Buffer): ReadAt => (o, n) => b.subarray(o, Math.min(b.length, o + n));
const fill = (sectors: number, byte: number, S = 512) => Buffer.alloc(sectors * S, byte);

const specs: Spec[] = [
  { mark: 'begin' },
  { write: 0, data: fill(2, 0x11) },
  { write: 4, data: fill(1, 0x22), flags: LOG_METADATA },
  { flush: true },
  { write: 1, data: fill(2, 0x33), flags: LOG_FUA },
  { discard: 0, sectors: 1 },
  { mark: 'ack-1' },
  { write: 7, data: fill(1, 0x44), flags: LOG_FLUSH | LOG_FUA },
  { flush: true },
];

/** The target image after specs[0..i], applied by hand. */
function expected(i: number, sectors = 8, S = 512): Buffer {
  const img = Buffer.alloc(sectors * S);
  for (const s of specs.slice(0, i + 1)) {
    if ('write' in s) s.data.copy(img, s.write * S);
    else if ('discard' in s) img.fill(0, s.discard * S, (s.discard + s.sectors) * S);
  }
  return img;
}

test('entries: positions, sectors, flags and mark names as laid out', () => {
  const log = buildLog(specs);
  const { super: sup, entries } = readLog(reader(log));
  assert.equal(sup, { version: 1, nrEntries: specs.length, sectorSize: 512 });
  assert.equal(entries.map((e) => [e.index, e.sector, e.nrSectors, flagNames(e.flags), e.mark ?? null]), [
    [0, 0, 0, 'MARK', 'begin'],
    [1, 0, 2, 'WRITE', null],
    [2, 4, 1, 'METADATA', null],
    [3, 0, 0, 'FLUSH', null],
    [4, 1, 2, 'FUA', null],
    [5, 0, 1, 'DISCARD', null],
    [6, 0, 0, 'MARK', 'ack-1'],
    [7, 7, 1, 'FLUSH|FUA', null],
    [8, 0, 0, 'FLUSH', null],
  ]);
  // header blocks and data: super 512, mark 512, write 512+1024, write 512+512, flush 512, …
  assert.equal(entries.map((e) => e.offset), [512, 1024, 2560, 3584, 4096, 5632, 6144, 6656, 7680]);
  assert.is(entries[1]!.dataOffset, 1536);
  assert.equal(entries.filter(isFlushPoint).map((e) => e.index), [3, 4, 7, 8]);
  assert.is(log.length, 8192);
});

test('replaying through each entry in turn gives the image of the entries applied by hand', () => {
  const log = buildLog(specs);
  const parsed = readLog(reader(log));
  const img = Buffer.alloc(8 * 512);
  const r = new Replayer(parsed, reader(log), (o, b) => b.copy(img, o), img.length, 512); // chunks of one sector
  for (let i = 0; i < specs.length; i++) {
    r.replayThrough(i);
    assert.is(r.applied, i + 1);
    assert.ok(img.equals(expected(i)), `image after entry ${i}`);
  }
  assert.throws(() => r.replayThrough(2), /behind the replay/);
  assert.throws(() => r.replayThrough(specs.length), /the log has 9/);
});

test('jumping straight to a later entry applies everything before it; a 4 KiB-sector log counts in 4 KiB sectors', () => {
  const S = 4096;
  const s4: Spec[] = [{ write: 1, data: fill(1, 0xaa, S) }, { flush: true }, { write: 0, data: fill(2, 0xbb, S), flags: LOG_FUA }];
  const log = buildLog(s4, S);
  const parsed = readLog(reader(log));
  assert.is(parsed.super.sectorSize, S);
  const img = Buffer.alloc(4 * S);
  new Replayer(parsed, reader(log), (o, b) => b.copy(img, o), img.length).replayThrough(2);
  const want = Buffer.alloc(4 * S);
  want.fill(0xbb, 0, 2 * S);
  assert.ok(img.equals(want));
});

test('entries past nr_entries are not part of the log (the super block is rewritten as the log grows)', () => {
  const log = buildLog(specs, 512, { nrEntries: 4 });
  const { entries } = readLog(reader(log));
  assert.is(entries.length, 4);
  assert.is(entries.at(-1)!.flags, LOG_FLUSH);
});

test('refused by name: another magic, another version, a bad sector size, unknown flags, a truncated log, a write past the target', () => {
  assert.throws(() => parseSuper(buildLog([], 512, { magic: 0x1234n })), (e: unknown) => e instanceof LogFormatError && /magic 0x1234/.test((e as Error).message));
  assert.throws(() => parseSuper(buildLog([], 512, { version: 2n })), /version 2, only 1/);
  const badS = buildLog([]);
  badS.writeUInt32LE(1000, 24);
  assert.throws(() => parseSuper(badS), /sector size 1000/);
  const weird = buildLog([{ flush: true }]);
  weird.writeBigUInt64LE(0x30n, 512 + 16);
  assert.throws(() => readLog(reader(weird)), /unknown flags 0x30/);
  const inline = buildLog([{ flush: true }]);
  inline.writeBigUInt64LE(8n, 512 + 24);
  assert.throws(() => readLog(reader(inline)), /data_len 8 on an entry that is not a mark/);
  const cut = buildLog(specs).subarray(0, 2000);
  assert.throws(() => readLog(reader(cut)), /entry 2 at byte 2560: the log ends/);
  const log = buildLog(specs);
  assert.throws(() => new Replayer(readLog(reader(log)), reader(log), () => {}, 4 * 512).replayThrough(7), /sectors 4\+1 run past the target's 2048 bytes/);
  const shortData = buildLog([{ write: 0, data: fill(4, 1) }]).subarray(0, 1024 + 512);
  const p = readLog(reader(shortData));
  assert.throws(() => new Replayer(p, reader(shortData), () => {}, 8 * 512).replayThrough(0), /the log ends inside its data/);
});

test('openReplay: a log file replayed onto a target file', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tjlw-'));
  try {
    const logFile = path.join(dir, 'log');
    const target = path.join(dir, 'target');
    writeFileSync(logFile, buildLog(specs));
    writeFileSync(target, '');
    truncateSync(target, 8 * 512);
    const r = openReplay(logFile, target);
    try {
      assert.equal(r.log.entries.filter((e) => e.mark).map((e) => e.mark), ['begin', 'ack-1']);
      r.replayer.replayThrough(4);
      assert.ok(readFileSync(target).equals(expected(4)));
      r.replayer.replayThrough(5); // the discard of sector 0, which holds data: zeroed
      assert.ok(readFileSync(target).equals(expected(5)));
      assert.is(readFileSync(target)[0], 0);
      r.replayer.replayThrough(8);
    } finally {
      r.close();
    }
    assert.ok(readFileSync(target).equals(expected(8)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
