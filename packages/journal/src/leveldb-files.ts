// A read-only checker of a LevelDB directory's own files (CURRENT, the MANIFEST it names, the live *.log files
// and the live tables), so the journal can see damage that LevelDB itself would silently drop or misreport: it
// is opened without paranoid checks (classic-level has no switch for them), so a log record that fails its
// checksum is skipped together with the rest of its 32 KiB block, a malformed write batch ends the replay of
// its log, and reads from tables never verify block checksums.
//
// Invariants
// - Read-only. The checker lists the directory and opens files with flag 'r' only: it never writes, renames,
//   locks, creates or deletes anything, and it does not take LevelDB's LOCK. It is meant for a directory no
//   process has open (running beside an open DB cannot harm it, but files may change under the check).
// - Pure: the report depends only on the names and bytes in the directory; no clock, no state kept between
//   calls (the crc32c tables are built once and never change).
// - Complete: checking continues after a problem wherever the format lets it resynchronise (the next valid log
//   record, the next table block), so `problems` lists every damage found, in file order: CURRENT, the
//   MANIFEST, the live logs oldest first, the live tables by number; within a file by offset.
// - Formats are read exactly as written by LevelDB 1.20 (log: 32 KiB blocks of records with a 7-byte header,
//   masked crc32c over type + payload; VersionEdit tags 1-7, 9; table: 48-byte footer, blocks with a 5-byte
//   trailer of compression type + masked crc32c over contents + type). Anything the writer cannot produce is
//   damage, even where LevelDB would tolerate it.
//
// Torn final write vs corruption
// A crash in the middle of a write leaves a *prefix* of what was written, followed by nothing, or by zeros
// where the file grew but the data never reached the disk (whole sectors, so from a 512-byte-aligned offset).
// Only the last live log written to (the newest one holding a byte other than zero: an open or a log switch
// starts a new log that may still be empty when the power goes) and the MANIFEST are appended to at the
// moment of a crash, so only there can a damaged region be a torn write (reported in `torn`: unacknowledged data, not damage), and only when nothing
// valid follows it and it has one of those shapes:
//   1. a record header, or a payload, cut short by the end of the file;
//   2. the bytes from a 512-byte-aligned offset inside the damaged record up to the end of the file are all
//      zero (the unwritten sectors of the last write);
//   3. zero bytes from the end of the last good record to the end of the file (rule: trailing zeros after a
//      complete record are a torn write, reported in `torn`, never a problem and never silently ignored: the
//      LevelDB writer never writes zeros except block padding, so zeros at the end mean the file grew for a
//      write whose data is lost; a padding tail of fewer than 7 bytes that ends exactly at a block boundary is
//      just padding and is not reported);
//   4. a FIRST fragment (and MIDDLEs) whose continuation is missing at the end of the file.
// Everything else is corruption: a record whose checksum fails while all its bytes are there and do not end in
// such a zero run (a flipped bit is not a torn write, even in the very last record); a payload that runs past
// the end of the file while the bytes that are there carry the record's valid checksum (the length field
// itself is damaged); any damage followed by a valid record; any damage at all in an older live log (it was
// complete before a newer log holding records was written).
// Block padding (a block tail of fewer than 7 bytes, which the writer fills with zeros): a non-zero byte there
// is reported as corruption although LevelDB ignores those bytes and no record is lost, because only an
// alteration of the file after it was written can put it there (a media error is a media error, wherever it
// lands); the message says that nothing was lost so the caller can weigh it.
// A zero-type, zero-length header (preallocated space) makes LevelDB skip the rest of the block; the checker
// accepts it when the rest of the block is zero too and nothing valid follows (rule 3), otherwise it is
// corruption (a zeroed region where records were, or records LevelDB would skip).
// Offsets: a log problem's offset is the header of the bad physical record (for a fragmented record that is
// never finished, its FIRST fragment); a torn write's offset is where the torn logical record starts.
//
// Tables
// A live table must exist (NNNNNN.ldb, or the older NNNNNN.sst), have exactly the size the MANIFEST recorded
// (a longer file is reported too, and then checked as the recorded prefix, which is all LevelDB reads), end in
// a footer with the magic number whose handles point inside the file, and have index and metaindex blocks
// whose trailers verify and whose entries parse (snappy-compressed ones are decompressed for that). With
// tables: 'full' every block the index and the metaindex list (data blocks, the filter block) is verified
// too, and the blocks must lie end to end up to the footer: every byte of the file is then under a checksum.
// The footer's padding must be zero, for the same reason as log block padding.

import { closeSync, fstatSync, openSync, readdirSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import path from 'node:path';

export type StoreProblemReason =
  | 'current-bad' // CURRENT missing, not "MANIFEST-<digits>\n", or names a missing manifest
  | 'manifest-corrupt' // a MANIFEST record fails its CRC / is malformed (not its torn final record), or a VersionEdit does not parse
  | 'log-corrupt' // a .log record fails its CRC / bad type / bad length / fragment sequence broken, anywhere but the torn final write of the last log written to
  | 'table-missing' // a table the manifest lists as live does not exist (neither NNNNNN.ldb nor NNNNNN.sst)
  | 'table-truncated' // its size differs from the size the manifest recorded
  | 'table-corrupt' // bad footer magic, a block handle out of range, a block whose CRC fails, an index/metaindex block that does not parse
  | 'unreadable'; // a file could not be read (errno in the message)

export interface StoreProblem {
  readonly file: string; // base name, e.g. "000820.ldb"
  readonly offset: number | null;
  readonly reason: StoreProblemReason;
  readonly message: string;
}

export interface TornWrite {
  readonly file: string;
  readonly offset: number; // where the torn record starts
  readonly bytes: number; // from offset to EOF
  readonly message: string;
}

export interface StoreReport {
  readonly problems: readonly StoreProblem[]; // empty: no damage found
  readonly torn: readonly TornWrite[]; // torn final writes (last log written to, manifest): not damage, unacknowledged data
  readonly manifest: string | null; // e.g. "MANIFEST-000005"
  readonly logs: readonly string[]; // live logs checked, oldest first
  readonly tables: readonly string[]; // live tables
}

// ---------------------------------------------------------------------------------------------------------
// crc32c (Castagnoli, reflected polynomial 0x82f63b78): slicing-by-16 over one flat table, reading aligned
// 32-bit words through an Int32Array view where the host is little-endian (every platform Node runs on in
// practice), bytes otherwise.

const CRC_TABLE: Int32Array = (() => {
  const t = new Int32Array(16 * 256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c;
  }
  for (let s = 1; s < 16; s++) {
    for (let i = 0; i < 256; i++) {
      const prev = t[(s - 1) * 256 + i]!;
      t[s * 256 + i] = (prev >>> 8) ^ t[prev & 0xff]!;
    }
  }
  return t;
})();

const LITTLE_ENDIAN = endianness() === 'LE';

/** crc32c of `data`; `init` is the crc of preceding data, so crc32c(b, crc32c(a)) === crc32c(a ‖ b). */
export function crc32c(data: Uint8Array, init = 0): number {
  return crcRange(data, 0, data.length, init);
}

function crcRange(d: Uint8Array, start: number, end: number, init = 0): number {
  const t = CRC_TABLE;
  let c = ~init;
  let i = start;
  if (LITTLE_ENDIAN && end - i >= 64) {
    while ((d.byteOffset + i) & 3) c = t[(c ^ d[i++]!) & 0xff]! ^ (c >>> 8);
    const words = (end - i) >>> 4 << 2; // whole 16-byte groups, in words
    const w = new Int32Array(d.buffer, d.byteOffset + i, words);
    for (let k = 0; k < words; k += 4) {
      const a = c ^ w[k]!, b = w[k + 1]!, x = w[k + 2]!, y = w[k + 3]!;
      c =
        t[0xf00 + (a & 0xff)]! ^ t[0xe00 + ((a >>> 8) & 0xff)]! ^ t[0xd00 + ((a >>> 16) & 0xff)]! ^ t[0xc00 + (a >>> 24)]! ^
        t[0xb00 + (b & 0xff)]! ^ t[0xa00 + ((b >>> 8) & 0xff)]! ^ t[0x900 + ((b >>> 16) & 0xff)]! ^ t[0x800 + (b >>> 24)]! ^
        t[0x700 + (x & 0xff)]! ^ t[0x600 + ((x >>> 8) & 0xff)]! ^ t[0x500 + ((x >>> 16) & 0xff)]! ^ t[0x400 + (x >>> 24)]! ^
        t[0x300 + (y & 0xff)]! ^ t[0x200 + ((y >>> 8) & 0xff)]! ^ t[0x100 + ((y >>> 16) & 0xff)]! ^ t[y >>> 24]!;
    }
    i += words * 4;
  }
  for (const end8 = end - 8; i <= end8; i += 8) {
    c ^= d[i]! | (d[i + 1]! << 8) | (d[i + 2]! << 16) | (d[i + 3]! << 24);
    c =
      t[0x700 + (c & 0xff)]! ^ t[0x600 + ((c >>> 8) & 0xff)]! ^ t[0x500 + ((c >>> 16) & 0xff)]! ^ t[0x400 + (c >>> 24)]! ^
      t[0x300 + d[i + 4]!]! ^ t[0x200 + d[i + 5]!]! ^ t[0x100 + d[i + 6]!]! ^ t[d[i + 7]!]!;
  }
  while (i < end) c = t[(c ^ d[i++]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

const MASK_DELTA = 0xa282ead8;
function unmask(masked: number): number {
  const rot = (masked - MASK_DELTA) >>> 0;
  return ((rot >>> 17) | (rot << 15)) >>> 0;
}

function u32(d: Uint8Array, p: number): number {
  return (d[p]! | (d[p + 1]! << 8) | (d[p + 2]! << 16) | (d[p + 3]! << 24)) >>> 0;
}

// ---------------------------------------------------------------------------------------------------------
// varints (little-endian base 128). Return the value and the position after it, or null when malformed.

interface Decoded { readonly value: number; readonly next: number }

function varint(d: Uint8Array, p: number, end: number, maxBytes: 5 | 10): Decoded | null {
  let value = 0;
  let scale = 1;
  for (let k = 0; k < maxBytes && p < end; k++) {
    const b = d[p++]!;
    value += (b & 0x7f) * scale;
    scale *= 128;
    if (b < 0x80) {
      if (maxBytes === 5 && value > 0xffffffff) return null;
      return { value, next: p };
    }
  }
  return null;
}

const varint32 = (d: Uint8Array, p: number, end: number): Decoded | null => varint(d, p, end, 5);
const varint64 = (d: Uint8Array, p: number, end: number): Decoded | null => varint(d, p, end, 10);

/** A length-prefixed slice: returns the position after it, or null. */
function skipSlice(d: Uint8Array, p: number, end: number): number | null {
  const len = varint32(d, p, end);
  if (len === null || len.next + len.value > end) return null;
  return len.next + len.value;
}

// ---------------------------------------------------------------------------------------------------------
// Files: opened with flag 'r' only.

type Read = { readonly ok: true; readonly bytes: Uint8Array } | { readonly ok: false; readonly code: string; readonly message: string };

function errInfo(err: unknown): { code: string; message: string } {
  const e = err as { code?: unknown; message?: unknown };
  return { code: typeof e.code === 'string' ? e.code : 'EIO', message: typeof e.message === 'string' ? e.message : String(err) };
}

function readWhole(file: string): Read {
  let fd: number | null = null;
  try {
    fd = openSync(file, 'r');
    const size = fstatSync(fd).size;
    const bytes = new Uint8Array(size);
    let got = 0;
    while (got < size) {
      const n = readSync(fd, bytes, got, size - got, got);
      if (n === 0) break;
      got += n;
    }
    return { ok: true, bytes: got === size ? bytes : bytes.subarray(0, got) };
  } catch (err) {
    return { ok: false, ...errInfo(err) };
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

/** Random access to a table: either the whole file in memory ('full') or positioned reads ('footer'). */
interface Source {
  readonly size: number;
  read(pos: number, len: number): Uint8Array;
}

function pad6(n: number): string {
  return String(n).padStart(6, '0');
}

// ---------------------------------------------------------------------------------------------------------
// Log files (*.log and MANIFEST-*).

const BLOCK = 32768;
const HEADER = 7;
const SECTOR = 512;
const FULL = 1, FIRST = 2, MIDDLE = 3, LAST = 4;
const TYPE_NAME = ['ZERO', 'FULL', 'FIRST', 'MIDDLE', 'LAST'];

interface LogicalRecord { readonly offset: number; readonly payload: Uint8Array }

type Item =
  | { readonly k: 'rec'; readonly off: number; readonly type: number; readonly start: number; readonly end: number }
  /** Damage at `off`. `eofCut`: cut short by the end of the file (torn shape 1). `extentEnd`: where the damaged
   *  record ends as far as can be told (for torn shape 2). `what`: plain words. */
  | { readonly k: 'bad'; readonly off: number; readonly extentEnd: number; readonly eofCut: boolean; readonly what: string }
  /** A zero-type, zero-length header with only zeros to the end of its block (or file). */
  | { readonly k: 'zeros'; readonly off: number; end: number }
  /** A block tail of fewer than 7 bytes that is not zero. */
  | { readonly k: 'pad'; readonly off: number; readonly end: number };

interface LogScan {
  readonly records: LogicalRecord[];
  readonly problems: StoreProblem[];
  readonly torn: TornWrite | null;
}

function allZero(d: Uint8Array, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (d[i] !== 0) return false;
  return true;
}

/** A valid physical record at q: a known type, a length that fits the block and the file, a matching crc. */
function validAt(d: Uint8Array, q: number): boolean {
  const n = d.length;
  const blockEnd = q - (q % BLOCK) + BLOCK;
  if (blockEnd - q < HEADER || n - q < HEADER) return false;
  const type = d[q + 6]!;
  if (type < FULL || type > LAST) return false;
  const len = d[q + 4]! | (d[q + 5]! << 8);
  const end = q + HEADER + len;
  if (end > blockEnd || end > n) return false;
  return crcRange(d, q + 6, end) === unmask(u32(d, q));
}

/** Cuts the file into items: valid physical records, damaged regions, zero regions, bad padding. */
function physicalItems(d: Uint8Array): Item[] {
  const n = d.length;
  const items: Item[] = [];
  let p = 0;
  /** After damage at `from`: the next valid record in the same block, else the next block. */
  const resync = (from: number): number => {
    const blockEnd = from - (from % BLOCK) + BLOCK;
    for (let q = from + 1; q + HEADER <= blockEnd && q + HEADER <= n; q++) if (validAt(d, q)) return q;
    return blockEnd;
  };
  while (p < n) {
    const blockEnd = p - (p % BLOCK) + BLOCK;
    const rem = blockEnd - p;
    if (rem < HEADER) {
      const end = Math.min(blockEnd, n);
      if (!allZero(d, p, end)) items.push({ k: 'pad', off: p, end });
      p = blockEnd;
      continue;
    }
    if (n - p < HEADER) {
      items.push({ k: 'bad', off: p, extentEnd: n, eofCut: true, what: `record header at offset ${p} is cut short by the end of the file (${n - p} of 7 bytes)` });
      break;
    }
    const len = d[p + 4]! | (d[p + 5]! << 8);
    const type = d[p + 6]!;
    if (type === 0 && len === 0) {
      const end = Math.min(blockEnd, n);
      if (allZero(d, p, end)) {
        const last = items[items.length - 1];
        if (last !== undefined && last.k === 'zeros' && last.end === p) last.end = end;
        else items.push({ k: 'zeros', off: p, end });
        p = blockEnd;
      } else {
        items.push({
          k: 'bad', off: p, extentEnd: p + HEADER, eofCut: false,
          what: `record at offset ${p} has a zero type and length (LevelDB skips the rest of the block, ${end - p} bytes) but non-zero bytes follow in the block`,
        });
        p = resync(p);
      }
      continue;
    }
    const end = p + HEADER + len;
    if (end > blockEnd) {
      items.push({
        k: 'bad', off: p, extentEnd: blockEnd, eofCut: false,
        what: `record at offset ${p} claims ${len} payload bytes, more than the ${rem - HEADER} left in its 32 KiB block`,
      });
      p = resync(p);
      continue;
    }
    if (end > n) {
      // The payload runs past the end of the file: torn, unless the bytes that are there carry the record's
      // valid checksum, which means they are the whole record and the length field is what is damaged.
      const lengthDamaged = crcRange(d, p + 6, n) === unmask(u32(d, p));
      items.push(lengthDamaged
        ? { k: 'bad', off: p, extentEnd: n, eofCut: false, what: `record at offset ${p} claims ${len} payload bytes but the file ends after ${n - p - HEADER}, and those bytes carry the record's valid checksum: its length field is damaged` }
        : { k: 'bad', off: p, extentEnd: n, eofCut: true, what: `record at offset ${p} is cut short by the end of the file (${n - p} of ${HEADER + len} bytes)` });
      break;
    }
    if (crcRange(d, p + 6, end) !== unmask(u32(d, p))) {
      items.push({ k: 'bad', off: p, extentEnd: end, eofCut: false, what: `record at offset ${p} fails its checksum` });
      p = resync(p);
      continue;
    }
    if (type < FULL || type > LAST) {
      items.push({ k: 'bad', off: p, extentEnd: end, eofCut: false, what: `record at offset ${p} has unknown type ${type}` });
      p = resync(p);
      continue;
    }
    items.push({ k: 'rec', off: p, type, start: p + HEADER, end });
    p = end;
  }
  return items;
}

/**
 * Reads a log file into logical records and classifies every damaged region as torn or corrupt.
 * `tornAllowed`: the last log written to (and any empty log after it) or the MANIFEST; `older`: in an older live log, why torn is not possible.
 */
function scanLog(file: string, d: Uint8Array, reason: 'log-corrupt' | 'manifest-corrupt', tornAllowed: boolean, older: string): LogScan {
  const n = d.length;
  const items = physicalItems(d);
  const records: LogicalRecord[] = [];
  const problems: StoreProblem[] = [];
  let torn: TornWrite | null = null;
  let zeroStart = n;
  while (zeroStart > 0 && d[zeroStart - 1] === 0) zeroStart--;

  // nextValid[i]: the offset of the first valid physical record after item i, or null.
  const nextValid: Array<number | null> = new Array<number | null>(items.length).fill(null);
  for (let j = items.length - 2; j >= 0; j--) {
    const after = items[j + 1]!;
    nextValid[j] = after.k === 'rec' ? after.off : nextValid[j + 1]!;
  }
  const problem = (offset: number, what: string): void => {
    problems.push({ file, offset, reason, message: `${file}: ${what}` });
  };

  let pending: { off: number; parts: Uint8Array[]; bytes: number } | null = null;
  let orphansExpected = false; // after damage, continuation fragments of the broken record are not reported again

  for (let i = 0; i < items.length && torn === null; i++) {
    const it = items[i]!;
    if (it.k === 'pad') {
      problem(it.off, `block padding at offset ${it.off} (${it.end - it.off} bytes before the 32 KiB block boundary) is not zero; LevelDB ignores these bytes and no record is lost, but the file was altered after it was written`);
      continue;
    }
    if (it.k === 'rec') {
      const payload = d.subarray(it.start, it.end);
      if (it.type === FULL || it.type === FIRST) {
        if (pending !== null && pending.bytes > 0) {
          problem(pending.off, `fragmented record starting at offset ${pending.off} is never finished: a ${TYPE_NAME[it.type]} record starts at ${it.off}`);
        }
        pending = null;
        orphansExpected = false;
        if (it.type === FULL) records.push({ offset: it.off, payload });
        else pending = { off: it.off, parts: [payload], bytes: payload.length };
      } else if (pending === null) {
        if (!orphansExpected) problem(it.off, `${TYPE_NAME[it.type]} fragment at offset ${it.off} has no FIRST fragment before it`);
      } else {
        pending.parts.push(payload);
        pending.bytes += payload.length;
        if (it.type === LAST) {
          const whole = new Uint8Array(pending.bytes);
          let at = 0;
          for (const part of pending.parts) { whole.set(part, at); at += part.length; }
          records.push({ offset: pending.off, payload: whole });
          pending = null;
        }
      }
      continue;
    }
    // Damage ('bad') or a zero region.
    const follows = nextValid[i] ?? null;
    let tornWhy: string | null = null;
    if (follows === null) {
      if (it.k === 'zeros') {
        if (it.end === n) tornWhy = `${n - it.off} zero bytes from offset ${it.off} to the end of the file`;
      } else if (it.eofCut) {
        tornWhy = it.what;
      } else if (zeroStart <= it.off) {
        tornWhy = `${it.what}, and the file is zero from there to its end`;
      } else {
        // Shape 2: zeros from a sector boundary inside the damaged record to the end of the file.
        const s = Math.ceil(zeroStart / SECTOR) * SECTOR;
        if (s < it.extentEnd && s < n) tornWhy = `${it.what}, and the file is zero from offset ${s} (a sector boundary inside the record) to its end`;
      }
    }
    if (tornWhy !== null && tornAllowed) {
      const start = pending !== null ? pending.off : it.off;
      const ofRecord = pending !== null ? ` (the fragmented record starting at ${pending.off} is incomplete)` : '';
      torn = { file, offset: start, bytes: n - start, message: `${file}: torn final write at offset ${start}, ${n - start} bytes: ${tornWhy}${ofRecord}` };
      break;
    }
    const broken = pending !== null && pending.bytes > 0 ? `; it breaks the fragmented record starting at ${pending.off}` : '';
    const after =
      follows !== null ? ` (a valid record follows at ${follows})`
      : tornWhy !== null ? ` (${older})`
      : it.k === 'zeros' ? ' (non-zero bytes follow them, so they are no unwritten tail)'
      : ' (nothing valid follows, but all its bytes are there, so this is damage, not a torn write)';
    if (it.k === 'zeros') problem(it.off, `${it.end - it.off} zero bytes at offset ${it.off} where records should be${broken}${after}`);
    else problem(it.off, `${it.what}${broken}${after}`);
    pending = null;
    orphansExpected = true;
  }
  if (torn === null && pending !== null) {
    const what = `fragmented record starting at offset ${pending.off} has no LAST fragment before the end of the file`;
    if (tornAllowed) torn = { file, offset: pending.off, bytes: n - pending.off, message: `${file}: torn final write at offset ${pending.off}, ${n - pending.off} bytes: ${what}` };
    else problem(pending.off, `${what} (${older})`);
  }
  return { records, problems, torn };
}

/** A write batch: 8-byte sequence, 4-byte count, then count × (tag 1 key value | tag 0 key). */
function writeBatchError(b: Uint8Array): string | null {
  if (b.length < 12) return `is ${b.length} bytes, too small for a write batch (12-byte header)`;
  const count = u32(b, 8);
  let p = 12;
  let seen = 0;
  while (p < b.length) {
    const tag = b[p++]!;
    if (tag !== 0 && tag !== 1) return `holds a write batch with unknown tag ${tag} at byte ${p - 1}`;
    const k = skipSlice(b, p, b.length);
    if (k === null) return `holds a write batch whose entry ${seen} has a bad key length`;
    p = k;
    if (tag === 1) {
      const v = skipSlice(b, p, b.length);
      if (v === null) return `holds a write batch whose entry ${seen} has a bad value length`;
      p = v;
    }
    seen++;
  }
  return seen === count ? null : `holds a write batch that says ${count} entries but has ${seen}`;
}

// ---------------------------------------------------------------------------------------------------------
// MANIFEST: VersionEdits.

const NUM_LEVELS = 7;

interface Edit {
  comparator?: string;
  logNumber?: number;
  prevLogNumber?: number;
  nextFile?: number;
  lastSequence?: number;
  deleted: Array<{ level: number; number: number }>;
  added: Array<{ level: number; number: number; size: number }>;
}

function parseEdit(b: Uint8Array): Edit | string {
  const e: Edit = { deleted: [], added: [] };
  const end = b.length;
  let p = 0;
  const level = (): number | null => {
    const v = varint32(b, p, end);
    if (v === null || v.value >= NUM_LEVELS) return null;
    p = v.next;
    return v.value;
  };
  const num = (): number | null => {
    const v = varint64(b, p, end);
    if (v === null) return null;
    p = v.next;
    return v.value;
  };
  const slice = (): boolean => {
    const q = skipSlice(b, p, end);
    if (q === null) return false;
    p = q;
    return true;
  };
  while (p < end) {
    const tag = varint32(b, p, end);
    if (tag === null) return `bad tag at byte ${p}`;
    p = tag.next;
    switch (tag.value) {
      case 1: {
        const len = varint32(b, p, end);
        if (len === null || len.next + len.value > end) return 'bad comparator name';
        e.comparator = Buffer.from(b.subarray(len.next, len.next + len.value)).toString('latin1');
        p = len.next + len.value;
        break;
      }
      case 2: { const v = num(); if (v === null) return 'bad log number'; e.logNumber = v; break; }
      case 3: { const v = num(); if (v === null) return 'bad next file number'; e.nextFile = v; break; }
      case 4: { const v = num(); if (v === null) return 'bad last sequence number'; e.lastSequence = v; break; }
      case 5: if (level() === null || !slice()) return 'bad compaction pointer'; break;
      case 6: {
        const l = level();
        const v = l === null ? null : num();
        if (l === null || v === null) return 'bad deleted-file entry';
        e.deleted.push({ level: l, number: v });
        break;
      }
      case 7: {
        const l = level();
        const v = l === null ? null : num();
        const size = v === null ? null : num();
        if (l === null || v === null || size === null || !slice() || !slice()) return 'bad new-file entry';
        e.added.push({ level: l, number: v, size });
        break;
      }
      case 9: { const v = num(); if (v === null) return 'bad previous log number'; e.prevLogNumber = v; break; }
      default: return `unknown tag ${tag.value} at byte ${p - 1}`;
    }
  }
  return e;
}

// ---------------------------------------------------------------------------------------------------------
// Tables.

const FOOTER = 48;
const TRAILER = 5;
const MAGIC_LO = 0x8b80fb57;
const MAGIC_HI = 0xdb477524;

interface Handle { readonly offset: number; readonly size: number }

/** Snappy raw format: varint length, then literal / copy elements. Returns null when malformed. */
function unsnappy(src: Uint8Array): Uint8Array | null {
  const len = varint32(src, 0, src.length);
  if (len === null) return null;
  const out = new Uint8Array(len.value);
  let p = len.next;
  let o = 0;
  while (p < src.length) {
    const tag = src[p++]!;
    const kind = tag & 3;
    if (kind === 0) {
      let n = tag >>> 2;
      if (n >= 60) {
        const extra = n - 59;
        if (p + extra > src.length) return null;
        n = 0;
        for (let k = 0; k < extra; k++) n += src[p + k]! * 2 ** (8 * k);
        p += extra;
      }
      n += 1;
      if (p + n > src.length || o + n > out.length) return null;
      out.set(src.subarray(p, p + n), o);
      p += n;
      o += n;
      continue;
    }
    let n: number;
    let dist: number;
    if (kind === 1) {
      if (p + 1 > src.length) return null;
      n = 4 + ((tag >>> 2) & 7);
      dist = ((tag >>> 5) << 8) | src[p]!;
      p += 1;
    } else if (kind === 2) {
      if (p + 2 > src.length) return null;
      n = 1 + (tag >>> 2);
      dist = src[p]! | (src[p + 1]! << 8);
      p += 2;
    } else {
      if (p + 4 > src.length) return null;
      n = 1 + (tag >>> 2);
      dist = u32(src, p);
      p += 4;
    }
    if (dist === 0 || dist > o || o + n > out.length) return null;
    for (let k = 0; k < n; k++, o++) out[o] = out[o - dist]!;
  }
  return o === out.length ? out : null;
}

/** The entries of a block (prefix-compressed keys, restart array, restart count); values only. */
function blockValues(b: Uint8Array): Uint8Array[] | string {
  if (b.length < 4) return `is ${b.length} bytes, too short for a restart count`;
  const restarts = u32(b, b.length - 4);
  if (restarts === 0 || restarts > (b.length - 4) / 4) return `has an impossible restart count ${restarts}`;
  const dataEnd = b.length - 4 - 4 * restarts;
  const restartAt = new Set<number>();
  let prevRestart = -1;
  for (let r = 0; r < restarts; r++) {
    const at = u32(b, dataEnd + 4 * r);
    if (at <= prevRestart || at >= Math.max(dataEnd, 1) || (r === 0 && at !== 0)) return `has a bad restart offset ${at}`;
    restartAt.add(at);
    prevRestart = at;
  }
  const values: Uint8Array[] = [];
  let p = 0;
  let keyLen = 0;
  while (p < dataEnd) {
    const shared = varint32(b, p, dataEnd);
    const own = shared === null ? null : varint32(b, shared.next, dataEnd);
    const vlen = own === null ? null : varint32(b, own.next, dataEnd);
    if (shared === null || own === null || vlen === null) return `has a malformed entry at byte ${p}`;
    if (shared.value > keyLen || (restartAt.has(p) && shared.value !== 0)) return `has an entry at byte ${p} that shares more key than there is`;
    const vStart = vlen.next + own.value;
    const next = vStart + vlen.value;
    if (next > dataEnd) return `has an entry at byte ${p} that runs past the entries`;
    restartAt.delete(p);
    keyLen = shared.value + own.value;
    values.push(b.subarray(vStart, next));
    p = next;
  }
  if (restartAt.size > 0) return `has a restart offset that is not an entry`;
  return values;
}

function decodeHandle(v: Uint8Array, p = 0, end = v.length): (Handle & { next: number }) | null {
  const off = varint64(v, p, end);
  const size = off === null ? null : varint64(v, off.next, end);
  if (off === null || size === null) return null;
  return { offset: off.value, size: size.value, next: size.next };
}

function checkTable(file: string, src: Source, full: boolean, problems: StoreProblem[]): void {
  const bad = (offset: number | null, what: string): void => {
    problems.push({ file, offset, reason: 'table-corrupt', message: `${file}: ${what}` });
  };
  const size = src.size;
  if (size < FOOTER) { bad(0, `is ${size} bytes, too short to hold the 48-byte footer`); return; }
  const footerAt = size - FOOTER;
  const footer = src.read(footerAt, FOOTER);
  if (u32(footer, 40) !== MAGIC_LO || u32(footer, 44) !== MAGIC_HI) {
    bad(footerAt, `footer at offset ${footerAt} has a bad magic number (not 0xdb4775248b80fb57): not a table, or its end is damaged`);
    return;
  }
  const meta = decodeHandle(footer, 0, 40);
  const index = meta === null ? null : decodeHandle(footer, meta.next, 40);
  if (meta === null || index === null) { bad(footerAt, `footer at offset ${footerAt} holds malformed block handles`); return; }
  if (!allZero(footer, index.next, 40)) {
    // The writer zero-fills the footer after the two handles; LevelDB ignores these bytes (see the header).
    bad(footerAt + index.next, `footer padding at offset ${footerAt + index.next} is not zero; LevelDB ignores these bytes, but the file was altered after it was written`);
  }

  /** Checks a block's range, trailer type and crc; returns its (decompressed) contents or null. */
  const block = (h: Handle, what: string, wantContents: boolean): Uint8Array | null => {
    if (h.offset + h.size + TRAILER > footerAt) {
      bad(h.offset, `${what} at offset ${h.offset} (${h.size} bytes) lies outside the ${footerAt} bytes before the footer`);
      return null;
    }
    const raw = src.read(h.offset, h.size + TRAILER);
    const type = raw[h.size]!;
    if (crcRange(raw, 0, h.size + 1) !== unmask(u32(raw, h.size + 1))) {
      bad(h.offset, `${what} at offset ${h.offset} (${h.size} bytes) fails its checksum`);
      return null;
    }
    if (type !== 0 && type !== 1) { bad(h.offset, `${what} at offset ${h.offset} has unknown compression type ${type}`); return null; }
    if (!wantContents) return raw;
    const contents = raw.subarray(0, h.size);
    if (type === 0) return contents;
    const plain = unsnappy(contents);
    if (plain === null) bad(h.offset, `${what} at offset ${h.offset} is snappy-compressed but does not decompress`);
    return plain;
  };
  /** Checks a block that lists handles; returns the handles, or null when it is damaged. */
  const handles = (h: Handle, what: string): Handle[] | null => {
    const contents = block(h, what, true);
    if (contents === null) return null;
    const values = blockValues(contents);
    if (typeof values === 'string') { bad(h.offset, `${what} at offset ${h.offset} ${values}`); return null; }
    const out: Handle[] = [];
    for (const [i, v] of values.entries()) {
      const d = decodeHandle(v);
      if (d === null) { bad(h.offset, `${what} at offset ${h.offset}: entry ${i} is not a block handle`); return null; }
      out.push({ offset: d.offset, size: d.size });
    }
    return out;
  };

  const metaBlocks = handles(meta, 'metaindex block');
  const dataBlocks = handles(index, 'index block');
  if (!full) return;
  // In file order: data blocks come first, then the meta blocks (the filter).
  const all: Array<{ h: Handle; what: string }> = [];
  for (const h of dataBlocks ?? []) all.push({ h, what: 'data block' });
  for (const h of metaBlocks ?? []) all.push({ h, what: 'meta block' });
  all.sort((a, b) => a.h.offset - b.h.offset);
  for (const { h, what } of all) block(h, what, false);
  if (dataBlocks === null || metaBlocks === null) return;
  // The writer lays the blocks end to end: data blocks, meta blocks, metaindex, index, footer. A gap or an
  // overlap means bytes no checksum covers, or handles that point into each other.
  const tiles = [...all.map((x) => x.h), meta, index].sort((a, b) => a.offset - b.offset);
  let at = 0;
  for (const h of tiles) {
    if (h.offset !== at) {
      bad(Math.min(at, h.offset), h.offset > at
        ? `bytes ${at} to ${h.offset} lie between blocks, covered by no block and no checksum`
        : `block at offset ${h.offset} overlaps the block before it, which ends at ${at}`);
      return;
    }
    at = h.offset + h.size + TRAILER;
  }
  if (at !== footerAt) bad(at, `bytes ${at} to ${footerAt} lie between the last block and the footer, covered by no checksum`);
}

// ---------------------------------------------------------------------------------------------------------
// The directory.

/** Checks the LevelDB directory `dir` without changing it. 'full' (default) checks every table block's crc;
 *  'footer' only each table's existence, size, footer, index and metaindex blocks. */
export function checkStore(dir: string, opts: { tables?: 'full' | 'footer' } = {}): StoreReport {
  const full = (opts.tables ?? 'full') === 'full';
  const problems: StoreProblem[] = [];
  const torn: TornWrite[] = [];
  const done = (manifest: string | null, logs: string[] = [], tables: string[] = []): StoreReport => ({ problems, torn, manifest, logs, tables });
  const unreadable = (file: string, e: { code: string; message: string }): void => {
    problems.push({ file, offset: null, reason: 'unreadable', message: `${file}: cannot be read (${e.code}: ${e.message})` });
  };

  let names: Set<string>;
  try {
    names = new Set(readdirSync(dir));
  } catch (err) {
    const e = errInfo(err);
    if (e.code === 'ENOENT') problems.push({ file: 'CURRENT', offset: null, reason: 'current-bad', message: `CURRENT: no CURRENT file (the directory ${dir} does not exist)` });
    else unreadable('.', { code: e.code, message: `the directory ${dir} cannot be listed: ${e.message}` });
    return done(null);
  }

  // CURRENT names the manifest.
  if (!names.has('CURRENT')) {
    problems.push({ file: 'CURRENT', offset: null, reason: 'current-bad', message: 'CURRENT: no CURRENT file' });
    return done(null);
  }
  const current = readWhole(path.join(dir, 'CURRENT'));
  if (!current.ok) { unreadable('CURRENT', current); return done(null); }
  const text = Buffer.from(current.bytes).toString('latin1');
  const m = /^(MANIFEST-[0-9]+)\n$/.exec(text);
  if (m === null) {
    problems.push({ file: 'CURRENT', offset: null, reason: 'current-bad', message: `CURRENT: does not hold "MANIFEST-<digits>\\n" but ${JSON.stringify(text.length > 60 ? text.slice(0, 60) + '…' : text)}` });
    return done(null);
  }
  const manifest = m[1]!;
  if (!names.has(manifest)) {
    problems.push({ file: 'CURRENT', offset: null, reason: 'current-bad', message: `CURRENT: names ${manifest}, which does not exist` });
    return done(manifest);
  }

  // The manifest: its edits give the live logs and tables.
  const mbytes = readWhole(path.join(dir, manifest));
  if (!mbytes.ok) { unreadable(manifest, mbytes); return done(manifest); }
  const mscan = scanLog(manifest, mbytes.bytes, 'manifest-corrupt', true, '');
  problems.push(...mscan.problems);
  if (mscan.torn !== null) torn.push(mscan.torn);
  let logNumber: number | undefined;
  let prevLogNumber = 0;
  let nextFile: number | undefined;
  let lastSequence: number | undefined;
  const live = new Map<string, { level: number; number: number; size: number }>();
  let editFailed = false;
  for (const rec of mscan.records) {
    const e = parseEdit(rec.payload);
    if (typeof e === 'string') {
      editFailed = true;
      problems.push({ file: manifest, offset: rec.offset, reason: 'manifest-corrupt', message: `${manifest}: the version edit in the record at offset ${rec.offset} does not parse: ${e}` });
      continue;
    }
    if (e.logNumber !== undefined) logNumber = e.logNumber;
    if (e.prevLogNumber !== undefined) prevLogNumber = e.prevLogNumber;
    if (e.nextFile !== undefined) nextFile = e.nextFile;
    if (e.lastSequence !== undefined) lastSequence = e.lastSequence;
    for (const f of e.deleted) live.delete(`${f.level}:${f.number}`);
    for (const f of e.added) live.set(`${f.level}:${f.number}`, f);
  }
  if (mscan.problems.length === 0 && !editFailed) {
    const missing = [
      nextFile === undefined ? 'next file number (no meta-nextfile entry in descriptor)' : null,
      logNumber === undefined ? 'log number (no meta-lognumber entry in descriptor)' : null,
      lastSequence === undefined ? 'last sequence number (no last-sequence-number entry in descriptor)' : null,
    ].filter((x): x is string => x !== null);
    if (missing.length > 0) {
      problems.push({ file: manifest, offset: null, reason: 'manifest-corrupt', message: `${manifest}: no version edit gives the ${missing.join(', the ')}; LevelDB refuses to open it` });
    }
  }

  // Live logs: number >= the log number, or the previous log number. Without a log number (damaged
  // manifest) every log present is checked.
  const minLog = logNumber ?? 0;
  const logs = [...names]
    .map((f) => /^([0-9]+)\.log$/.exec(f))
    .filter((x): x is RegExpExecArray => x !== null)
    .map((x) => ({ name: x[0], number: Number(x[1]) }))
    .filter((l) => l.number >= minLog || l.number === prevLogNumber)
    .sort((a, b) => a.number - b.number);
  const contents = logs.map((log) => ({ log, bytes: readWhole(path.join(dir, log.name)) }));
  // The log LevelDB last wrote to: the newest live log that holds a byte other than zero. A newer log that
  // is empty (or only zeros, itself a torn write) was created by an open or a log switch whose own writes
  // never reached the disk, so the log before it may still end in a torn write.
  let lastWritten = contents.length - 1;
  while (lastWritten > 0) {
    const b = contents[lastWritten]!.bytes;
    if (!b.ok || b.bytes.some((x) => x !== 0)) break;
    lastWritten--;
  }
  for (const [i, { log, bytes }] of contents.entries()) {
    if (!bytes.ok) { unreadable(log.name, bytes); continue; }
    const mayBeTorn = i >= lastWritten;
    const scan = scanLog(log.name, bytes.bytes, 'log-corrupt', mayBeTorn, `torn writes are only possible in the last log written to, and ${contents[lastWritten]!.log.name} after this one holds records`);
    const batchProblems: StoreProblem[] = [];
    for (const rec of scan.records) {
      const why = writeBatchError(rec.payload);
      if (why !== null) batchProblems.push({ file: log.name, offset: rec.offset, reason: 'log-corrupt', message: `${log.name}: record at offset ${rec.offset} ${why} (LevelDB stops replaying the log there)` });
    }
    problems.push(...[...scan.problems, ...batchProblems].sort((a, b) => (a.offset ?? 0) - (b.offset ?? 0)));
    if (scan.torn !== null) torn.push(scan.torn);
  }

  // Live tables.
  const tables = [...new Map([...live.values()].map((f) => [f.number, f])).values()].sort((a, b) => a.number - b.number);
  const tableName = (n: number): string | null => {
    const ldb = `${pad6(n)}.ldb`;
    if (names.has(ldb)) return ldb;
    const sst = `${pad6(n)}.sst`;
    return names.has(sst) ? sst : null;
  };
  const missing = tables.filter((t) => tableName(t.number) === null).map((t) => `${pad6(t.number)}.ldb`);
  const tableNames: string[] = [];
  for (const t of tables) {
    const name = tableName(t.number);
    if (name === null) {
      const ldb = `${pad6(t.number)}.ldb`;
      tableNames.push(ldb);
      problems.push({
        file: ldb, offset: null, reason: 'table-missing',
        message: `${ldb}: table ${t.number} (level ${t.level}, ${t.size} bytes) is live in ${manifest} but neither ${ldb} nor ${pad6(t.number)}.sst exists; ${missing.length} missing files; ${missing.join(', ')}`,
      });
      continue;
    }
    tableNames.push(name);
    let fd: number | null = null;
    try {
      fd = openSync(path.join(dir, name), 'r');
      const actual = fstatSync(fd).size;
      if (actual !== t.size) {
        problems.push({
          file: name, offset: Math.min(actual, t.size), reason: 'table-truncated',
          message: `${name}: is ${actual} bytes but ${manifest} records ${t.size} bytes (${actual < t.size ? `truncated at offset ${actual}` : `grown by ${actual - t.size} bytes from offset ${t.size}`})`,
        });
        if (actual < t.size) continue; // LevelDB reads the footer at the recorded size: nothing more to check
      }
      const size = t.size;
      const handle = fd;
      let src: Source;
      if (full) {
        const all = new Uint8Array(size);
        let got = 0;
        while (got < size) {
          const k = readSync(handle, all, got, size - got, got);
          if (k === 0) break;
          got += k;
        }
        src = { size: got, read: (pos, len) => all.subarray(pos, pos + len) };
      } else {
        src = {
          size,
          read: (pos, len) => {
            const b = new Uint8Array(len);
            let got = 0;
            while (got < len) {
              const k = readSync(handle, b, got, len - got, pos + got);
              if (k === 0) break;
              got += k;
            }
            return b;
          },
        };
      }
      checkTable(name, src, full, problems);
    } catch (err) {
      unreadable(name, errInfo(err));
    } finally {
      if (fd !== null) closeSync(fd);
    }
  }
  return done(manifest, logs.map((l) => l.name), tableNames);
}
