/**
 * A reader and replayer for the log that device-mapper's `log-writes` target keeps (the kernel's
 * Documentation/admin-guide/device-mapper/log-writes.rst). Layout, all integers little-endian, every
 * position a multiple of the log's sector size `S` (the logical block size of the logged device):
 *
 *   offset 0      super block: magic u64, version u64, nr_entries u64, sectorsize u32
 *   offset S      entry 0: sector u64, nr_sectors u64, flags u64, data_len u64, padded to S bytes;
 *                 flags: FLUSH 1, FUA 2, DISCARD 4, MARK 8, METADATA 16 (a REQ_META write: newer kernels);
 *                 a MARK entry's name (data_len bytes) follows the 32-byte header inside that block;
 *                 a write is followed by its nr_sectors × S bytes of data; a DISCARD carries no data
 *   …             entry 1, …
 *
 * `sector` and `nr_sectors` count S-byte sectors of the logged device. The target appends a write only once
 * a later FLUSH has completed (or at once for FUA), so replaying entries 0…i of the log gives one state the
 * device could hold after a power cut right after entry i; at a FLUSH or FUA entry that state is exactly
 * what the device had promised to keep. The super block's nr_entries is rewritten as the log grows (and on
 * the target's removal); entries past it are not part of the log.
 */
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';

export const LOG_FLUSH = 1;
export const LOG_FUA = 2;
export const LOG_DISCARD = 4;
export const LOG_MARK = 8;
/** A write the filesystem tagged as its metadata (REQ_META): replayed like any write. */
export const LOG_METADATA = 16;
/** The bytes "rhswfsj\0" on disk, read as a little-endian u64. */
export const LOG_MAGIC = 0x6a736677736872n;
export const LOG_VERSION = 1n;
export const HEADER_BYTES = 32;

export interface LogSuper { version: number; nrEntries: number; sectorSize: number }

export interface LogEntry {
  /** Position in the log, from 0. */
  index: number;
  /** Byte offset of the entry's header in the log. */
  offset: number;
  /** First sector written (S-byte sectors of the logged device). */
  sector: number;
  nrSectors: number;
  flags: number;
  /** The name of a MARK entry. */
  mark?: string;
  /** Byte offset of a write's data in the log; its length is nrSectors × S. */
  dataOffset: number;
}

export class LogFormatError extends Error {}

/** Reads `length` bytes at `offset`, short only at the end of the log. */
export type ReadAt = (offset: number, length: number) => Buffer;

function u64(b: Buffer, at: number, what: string): number {
  const v = b.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new LogFormatError(`${what} ${v} is out of range`);
  return Number(v);
}

export function parseSuper(b: Buffer): LogSuper {
  if (b.length < 28) throw new LogFormatError(`super block: ${b.length} bytes, need 28`);
  const magic = b.readBigUInt64LE(0);
  if (magic !== LOG_MAGIC) throw new LogFormatError(`super block: magic 0x${magic.toString(16)} is not log-writes' 0x${LOG_MAGIC.toString(16)}`);
  const version = b.readBigUInt64LE(8);
  if (version !== LOG_VERSION) throw new LogFormatError(`super block: version ${version}, only ${LOG_VERSION} is known`);
  const sectorSize = b.readUInt32LE(24);
  if (sectorSize < 512 || (sectorSize & (sectorSize - 1)) !== 0) throw new LogFormatError(`super block: sector size ${sectorSize} is not a power of two ≥ 512`);
  return { version: Number(version), nrEntries: u64(b, 16, 'nr_entries'), sectorSize };
}

/** The super block and every entry of a log, in order (data is not read, only located). */
export function readLog(read: ReadAt): { super: LogSuper; entries: LogEntry[] } {
  const sup = parseSuper(read(0, 28));
  const S = sup.sectorSize;
  const entries: LogEntry[] = [];
  let offset = S;
  for (let index = 0; index < sup.nrEntries; index++) {
    const h = read(offset, S);
    if (h.length < HEADER_BYTES) throw new LogFormatError(`entry ${index} at byte ${offset}: the log ends (${sup.nrEntries} entries announced)`);
    const sector = u64(h, 0, `entry ${index}: sector`);
    const nrSectors = u64(h, 8, `entry ${index}: nr_sectors`);
    const flags = u64(h, 16, `entry ${index}: flags`);
    const dataLen = u64(h, 24, `entry ${index}: data_len`);
    if (flags & ~(LOG_FLUSH | LOG_FUA | LOG_DISCARD | LOG_MARK | LOG_METADATA)) throw new LogFormatError(`entry ${index} at byte ${offset}: unknown flags 0x${flags.toString(16)}`);
    const e: LogEntry = { index, offset, sector, nrSectors, flags, dataOffset: offset + S };
    if (flags & LOG_MARK) {
      if (HEADER_BYTES + dataLen > S) throw new LogFormatError(`entry ${index}: a mark of ${dataLen} bytes does not fit its ${S}-byte block`);
      e.mark = h.subarray(HEADER_BYTES, HEADER_BYTES + dataLen).toString('utf8').replace(/\0+$/, '');
    } else if (dataLen !== 0) {
      // Only marks carry inline data in this format version; anything else has a layout we do not know.
      throw new LogFormatError(`entry ${index} at byte ${offset}: data_len ${dataLen} on an entry that is not a mark`);
    }
    entries.push(e);
    offset += S + (flags & LOG_DISCARD ? 0 : nrSectors * S);
  }
  return { super: sup, entries };
}

export const isFlushPoint = (e: LogEntry): boolean => (e.flags & (LOG_FLUSH | LOG_FUA)) !== 0;

/** A human-readable list of an entry's flags. */
export function flagNames(flags: number): string {
  const n = [];
  if (flags & LOG_FLUSH) n.push('FLUSH');
  if (flags & LOG_FUA) n.push('FUA');
  if (flags & LOG_DISCARD) n.push('DISCARD');
  if (flags & LOG_MARK) n.push('MARK');
  if (flags & LOG_METADATA) n.push('METADATA');
  return n.join('|') || 'WRITE';
}

/**
 * Applies a log's entries, in order, to a target: `write(offset, bytes)` on the target. A DISCARD is
 * replayed as zeroes (what the target reads back after a discard is not defined; zeroes make the replay
 * deterministic; `discard` may do it more cheaply). `replayThrough(i)` applies every entry up to and including i that is not yet applied;
 * the replay only moves forward.
 */
export class Replayer {
  private next = 0;
  private readonly S: number;
  constructor(
    private readonly log: { super: LogSuper; entries: LogEntry[] },
    private readonly read: ReadAt,
    private readonly write: (offset: number, bytes: Buffer) => void,
    private readonly targetBytes: number,
    private readonly chunk = 1 << 20,
    private readonly discard: (offset: number, bytes: number) => void = (offset, bytes) => write(offset, Buffer.alloc(bytes)),
  ) {
    this.S = log.super.sectorSize;
  }
  /** How many entries have been applied. */
  get applied(): number {
    return this.next;
  }
  replayThrough(index: number): void {
    if (index >= this.log.entries.length) throw new RangeError(`entry ${index}: the log has ${this.log.entries.length}`);
    if (index < this.next - 1) throw new RangeError(`entry ${index} is behind the replay (at ${this.next})`);
    for (; this.next <= index; this.next++) this.apply(this.log.entries[this.next]!);
  }
  private apply(e: LogEntry): void {
    if (e.flags & LOG_MARK || e.nrSectors === 0) return;
    const at = e.sector * this.S;
    const bytes = e.nrSectors * this.S;
    if (at + bytes > this.targetBytes) throw new LogFormatError(`entry ${e.index}: sectors ${e.sector}+${e.nrSectors} run past the target's ${this.targetBytes} bytes`);
    for (let done = 0; done < bytes; done += this.chunk) {
      const n = Math.min(this.chunk, bytes - done);
      if (e.flags & LOG_DISCARD) {
        this.discard(at + done, n);
      } else {
        const data = this.read(e.dataOffset + done, n);
        if (data.length !== n) throw new LogFormatError(`entry ${e.index}: the log ends inside its data`);
        this.write(at + done, data);
      }
    }
  }
}

/** ReadAt on an open file descriptor. */
export function fdReader(fd: number): ReadAt {
  return (offset, length) => {
    const b = Buffer.alloc(length);
    let got = 0;
    while (got < length) {
      const n = readSync(fd, b, got, length - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    return got === length ? b : b.subarray(0, got);
  };
}

/** The log in the file or block device at `logPath`, and a Replayer onto the file at `targetPath`. */
export function openReplay(logPath: string, targetPath: string): { log: { super: LogSuper; entries: LogEntry[] }; replayer: Replayer; close(): void } {
  const lfd = openSync(logPath, 'r');
  const tfd = openSync(targetPath, 'r+');
  const read = fdReader(lfd);
  const log = readLog(read);
  const write = (offset: number, bytes: Buffer) => {
    for (let done = 0; done < bytes.length;) done += writeSync(tfd, bytes, done, bytes.length - done, offset + done);
  };
  const treader = fdReader(tfd);
  // A sparse target stays sparse: zeroes are written only where it does not read back zeroes already.
  const discard = (offset: number, bytes: number) => {
    const zero = Buffer.alloc(bytes);
    if (!treader(offset, bytes).equals(zero)) write(offset, zero);
  };
  const replayer = new Replayer(log, read, write, fstatSync(tfd).size, 1 << 20, discard);
  return { log, replayer, close: () => { closeSync(lfd); closeSync(tfd); } };
}
