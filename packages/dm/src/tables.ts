/**
 * Typed builders and parsers for the two dm-thin tables (Documentation/admin-guide/device-mapper/
 * thin-provisioning.rst):
 *   thin-pool <metadata dev> <data dev> <data block size (sectors)> <low water mark (blocks)> [<#features> <feature>*]
 *   thin <pool dev> <dev id> [<external origin dev>]
 * Builders validate against the kernel's limits and throw ERR_DM_TABLE before anything reaches the kernel.
 */
import { ThinjournalError } from '@thinjournal/spec';
import { MAX_THIN_ID } from './names.js';

/** One target line of a table: sectors are 512-byte units. */
export interface TableLine {
  start: number;
  length: number;
  type: string;
  params: string;
}

/** The unit of table lengths and of dm-thin's data block size. */
export const SECTOR_BYTES = 512;
/** dm-thin's metadata block; block 0 is the superblock, and a metadata device whose superblock is zeroed is formatted afresh at the pool's first load. */
export const METADATA_BLOCK_BYTES = 4096;

/** 64 KiB .. 1 GiB, a multiple of 64 KiB (dm-thin.c DATA_DEV_BLOCK_SIZE_MIN/MAX_SECTORS). */
export const MIN_DATA_BLOCK_SECTORS = 128;
export const MAX_DATA_BLOCK_SECTORS = 2097152;

export interface ThinPoolFeatures {
  skipBlockZeroing?: boolean;
  ignoreDiscard?: boolean;
  noDiscardPassdown?: boolean;
  readOnly?: boolean;
  errorIfNoSpace?: boolean;
}

export interface ThinPoolTableSpec {
  metadataDevice: string;
  dataDevice: string;
  /** Table length in sectors; the pool has floor(length / dataBlockSectors) data blocks. */
  lengthSectors: number;
  dataBlockSectors: number;
  /** In data blocks; when free blocks fall below it the pool raises a dm event. */
  lowWaterMarkBlocks: number;
  features?: ThinPoolFeatures;
}

export interface ThinTableSpec {
  poolDevice: string;
  id: number;
  lengthSectors: number;
  externalOrigin?: string;
}

/** Kernel emission order of pool features (dm-thin.c emit_flags). */
const FEATURE_ORDER: [keyof ThinPoolFeatures, string][] = [
  ['skipBlockZeroing', 'skip_block_zeroing'],
  ['ignoreDiscard', 'ignore_discard'],
  ['noDiscardPassdown', 'no_discard_passdown'],
  ['readOnly', 'read_only'],
  ['errorIfNoSpace', 'error_if_no_space'],
];

function bad(message: string, details: Record<string, unknown> = {}): never {
  throw new ThinjournalError('ERR_DM_TABLE', message, details);
}

function checkDevice(what: string, dev: unknown): string {
  if (typeof dev !== 'string' || dev.length === 0 || /\s/.test(dev) || dev.includes('\0')) bad(`${what} must be a non-empty device path without whitespace`, { device: dev });
  return dev;
}

function checkCount(what: string, n: unknown, min: number): number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min) bad(`${what} must be a safe integer >= ${min}, got ${String(n)}`);
  return n;
}

export function thinPoolTable(spec: ThinPoolTableSpec): TableLine {
  const meta = checkDevice('metadataDevice', spec.metadataDevice);
  const data = checkDevice('dataDevice', spec.dataDevice);
  if (meta === data) bad('metadata and data devices must differ');
  const bs = checkCount('dataBlockSectors', spec.dataBlockSectors, MIN_DATA_BLOCK_SECTORS);
  if (bs > MAX_DATA_BLOCK_SECTORS || bs % MIN_DATA_BLOCK_SECTORS !== 0) {
    bad(`dataBlockSectors ${bs} must be a multiple of ${MIN_DATA_BLOCK_SECTORS} in ${MIN_DATA_BLOCK_SECTORS}..${MAX_DATA_BLOCK_SECTORS}`);
  }
  const len = checkCount('lengthSectors', spec.lengthSectors, 1);
  const blocks = Math.floor(len / bs);
  if (blocks < 1) bad(`lengthSectors ${len} holds no data block of ${bs} sectors`);
  const lwm = checkCount('lowWaterMarkBlocks', spec.lowWaterMarkBlocks, 0);
  // The kernel accepts a larger mark (6.1 does) but then signals low space at once: refuse it here.
  if (lwm >= blocks) bad(`lowWaterMarkBlocks ${lwm} must be below the pool's ${blocks} data blocks`);
  const f = FEATURE_ORDER.filter(([k]) => spec.features?.[k]).map(([, s]) => s);
  const params = `${meta} ${data} ${bs} ${lwm}` + (f.length ? ` ${f.length} ${f.join(' ')}` : '');
  return { start: 0, length: len, type: 'thin-pool', params };
}

export function thinTable(spec: ThinTableSpec): TableLine {
  const pool = checkDevice('poolDevice', spec.poolDevice);
  if (typeof spec.id !== 'number' || !Number.isInteger(spec.id) || spec.id < 0 || spec.id > MAX_THIN_ID) bad(`thin id ${String(spec.id)} is not in 0..${MAX_THIN_ID}`);
  const len = checkCount('lengthSectors', spec.lengthSectors, 1);
  let params = `${pool} ${spec.id}`;
  if (spec.externalOrigin !== undefined) params += ` ${checkDevice('externalOrigin', spec.externalOrigin)}`;
  return { start: 0, length: len, type: 'thin', params };
}

/** A pool's geometry in bytes, as the journal records it. */
export interface PoolGeometry {
  readonly dataDevice: string;
  readonly metadataDevice: string;
  /** Bytes of data device the table covers; rounded down to whole data blocks. */
  readonly dataSize: number;
  /** Data block size in bytes. */
  readonly blockSize: number;
}

/**
 * The thin-pool table for a pool's geometry: whole data blocks, block zeroing skipped (every thin device
 * gets a filesystem or a snapshot's blocks), a low-water mark of Docker's 32768 blocks but below a tenth of
 * the pool (the kernel needs it below the pool's block count).
 */
export function poolTableSpec(p: PoolGeometry): ThinPoolTableSpec {
  const dataBlockSectors = p.blockSize / SECTOR_BYTES;
  const blocks = Math.floor(p.dataSize / p.blockSize);
  const lowWaterMarkBlocks = Math.max(1, Math.min(32768, Math.floor(blocks / 10)));
  return { metadataDevice: p.metadataDevice, dataDevice: p.dataDevice, lengthSectors: blocks * dataBlockSectors, dataBlockSectors, lowWaterMarkBlocks, features: { skipBlockZeroing: true } };
}

/** The thin table of a device of `size` bytes (whole sectors) with thin id `id` in the pool at `poolDevice`. */
export function thinTableSpec(poolDevice: string, id: number, size: number): ThinTableSpec {
  return { poolDevice, id, lengthSectors: Math.floor(size / SECTOR_BYTES) };
}

/** What formatFreshMetadata needs of a backend. */
export interface MetadataDeviceAccess {
  readMetadata(metadataDevice: string): Promise<unknown>;
  zeroRange(device: string, offset: number, length: number): Promise<void>;
}

/**
 * Makes a metadata device that holds no readable pool metadata one dm-thin formats at the pool's first load
 * (its superblock zeroed); a device with readable metadata is left as it is (the pool is adopted). Resolves
 * true when it zeroed the superblock. Must not be used on the metadata device of an active pool.
 */
export async function formatFreshMetadata(b: MetadataDeviceAccess, metadataDevice: string): Promise<boolean> {
  const readable = await b.readMetadata(metadataDevice).then(() => true, () => false);
  if (readable) return false;
  await b.zeroRange(metadataDevice, 0, METADATA_BLOCK_BYTES);
  return true;
}

export interface ParsedThinPoolTable {
  metadataDevice: string;
  dataDevice: string;
  dataBlockSectors: number;
  lowWaterMarkBlocks: number;
  features: Required<ThinPoolFeatures>;
}

function tableError(line: string, why: string): never {
  throw new ThinjournalError('ERR_DM_STATUS', `thin table ${JSON.stringify(line)}: ${why}`, { line });
}

function uint(tok: string | undefined, line: string, what: string): number {
  if (tok === undefined || !/^\d+$/.test(tok)) tableError(line, `${what} is not an unsigned integer`);
  const n = Number(tok);
  if (!Number.isSafeInteger(n)) tableError(line, `${what} is beyond 2^53`);
  return n;
}

/** Parses thin-pool table params (as given to the kernel or as it reports them, e.g. "7:0 7:1 128 100 0 "). */
export function parseThinPoolTable(params: string): ParsedThinPoolTable {
  const t = params.trim().split(/\s+/);
  if (t.length < 4) tableError(params, 'fewer than 4 fields');
  const features: Required<ThinPoolFeatures> = { skipBlockZeroing: false, ignoreDiscard: false, noDiscardPassdown: false, readOnly: false, errorIfNoSpace: false };
  if (t.length > 4) {
    const n = uint(t[4], params, 'feature count');
    if (t.length !== 5 + n) tableError(params, `feature count ${n} does not match ${t.length - 5} features`);
    for (const word of t.slice(5)) {
      const hit = FEATURE_ORDER.find(([, s]) => s === word);
      if (!hit) tableError(params, `unknown feature ${word}`);
      features[hit[0]] = true;
    }
  }
  return {
    metadataDevice: t[0]!,
    dataDevice: t[1]!,
    dataBlockSectors: uint(t[2], params, 'data block size'),
    lowWaterMarkBlocks: uint(t[3], params, 'low water mark'),
    features,
  };
}

export interface ParsedThinTable {
  poolDevice: string;
  id: number;
  externalOrigin: string | null;
}

export function parseThinTable(params: string): ParsedThinTable {
  const t = params.trim().split(/\s+/);
  if (t.length < 2 || t.length > 3 || t[0] === '') tableError(params, 'expected <pool dev> <dev id> [<external origin>]');
  return { poolDevice: t[0]!, id: uint(t[1], params, 'dev id'), externalOrigin: t[2] ?? null };
}

/** Parses one line of `dmsetup table|status` output for a single device: "<start> <length> <type> <params…>". */
export function parseTableLine(line: string): TableLine {
  const m = /^\s*(\d+)\s+(\d+)\s+(\S+)\s?(.*)$/.exec(line.replace(/\n$/, ''));
  if (!m) throw new ThinjournalError('ERR_DM_STATUS', `not a table line: ${JSON.stringify(line)}`, { line });
  return { start: Number(m[1]), length: Number(m[2]), type: m[3]!, params: m[4]! };
}
