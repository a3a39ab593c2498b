/**
 * Input rules shared by decide, evolve and the options parser. Every check throws a coded ThinjournalError
 * naming the offending text; none of them changes anything.
 *
 * ERR_BAD_ID covers every name-like input: device hashes, dm device names, mount paths, filesystem UUIDs.
 */
import { ThinjournalError } from '@thinjournal/spec';

/** dm-thin device ids are 24-bit. */
export const MAX_DEVICE_ID = 0xffffff;
export const SECTOR_BYTES = 512;
/**
 * Largest size (bytes) a device or pool may have: the largest sector-aligned safe integer (2^53 − 512, ~8 PiB).
 * dm-thin addresses 2^64 sectors, so this limit — what a journal uint can carry exactly — is the binding one.
 */
export const MAX_SIZE_BYTES = Number.MAX_SAFE_INTEGER - (Number.MAX_SAFE_INTEGER % SECTOR_BYTES);
export const MAX_ID_BYTES = 255;
/** DM_NAME_LEN is 128 including the terminating NUL. */
export const MAX_DM_NAME_BYTES = 127;
export const MAX_PATH_BYTES = 4096;
/** The base image's hash, as in Docker's layout. */
export const BASE_HASH = '';
/** Docker names the base image's dm device and metadata file `base`; a layer with that hash would collide. */
export const RESERVED_HASHES: ReadonlySet<string> = new Set(['base']);
export const BLOCK_SIZE_MIN = 64 * 1024;
export const BLOCK_SIZE_MAX = 1024 * 1024 * 1024;

// C0 controls, DEL and C1 controls (NUL included).
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// A UTF-16 surrogate without its partner cannot be encoded as UTF-8 and would be mangled on the way to disk.
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 80 ? v.slice(0, 77) + '…' : v);
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v);
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v;
}

function badId(what: string, v: unknown, why: string): ThinjournalError {
  return new ThinjournalError('ERR_BAD_ID', `${what} ${show(v)} ${why}`, { value: v });
}

function checkText(what: string, v: unknown, maxBytes: number): string {
  if (typeof v !== 'string') throw badId(what, v, 'is not a string');
  if (CONTROL.test(v)) throw badId(what, v, 'contains a NUL or control character');
  if (LONE_SURROGATE.test(v)) throw badId(what, v, 'is not valid Unicode (lone surrogate)');
  if (Buffer.byteLength(v) > maxBytes) throw badId(what, v, `is longer than ${maxBytes} bytes`);
  return v;
}

/**
 * A device hash. Empty only where `allowBase` (the base image's hash is ""). No `/` or `\`, no `..`, not `.`,
 * no control characters, at most 255 UTF-8 bytes, not a reserved name.
 */
export function checkHash(v: unknown, { allowBase = false, what = 'device hash' } = {}): string {
  const s = checkText(what, v, MAX_ID_BYTES);
  if (s === '') {
    if (allowBase) return s;
    throw badId(what, v, 'is empty (only the base image has the empty hash)');
  }
  if (s.includes('/') || s.includes('\\')) throw badId(what, v, 'contains a path separator');
  if (s.includes('..') || s === '.') throw badId(what, v, 'contains ".." or is "."');
  if (RESERVED_HASHES.has(s)) throw badId(what, v, 'is reserved (it names the base image\'s device)');
  return s;
}

/** A dm device name: 1…127 bytes, no `/`, no control characters, not `.` or `..`. */
export function checkDmName(v: unknown, what = 'dm device name'): string {
  const s = checkText(what, v, MAX_DM_NAME_BYTES);
  if (s === '' || s === '.' || s === '..') throw badId(what, v, 'is empty, "." or ".."');
  if (s.includes('/')) throw badId(what, v, 'contains "/"');
  return s;
}

/** An absolute, normalised mount path other than `/`: no empty, `.` or `..` segment, no control characters. */
export function checkMountPath(v: unknown): string {
  const s = checkText('mount path', v, MAX_PATH_BYTES);
  if (!s.startsWith('/')) throw badId('mount path', v, 'is not absolute');
  const segments = s.slice(1).split('/');
  if (segments.some((seg) => seg === '' || seg === '.' || seg === '..')) {
    throw badId('mount path', v, 'is not normalised (empty, "." or ".." segment, trailing "/", or "/" itself)');
  }
  return s;
}

/** Mount options text: a comma-separated list, no whitespace or control characters. */
export function checkMountOptions(v: unknown): string {
  const s = checkText('mount options', v, MAX_PATH_BYTES);
  if (/\s/.test(s)) throw badId('mount options', v, 'contain whitespace');
  if (s !== '' && s.split(',').some((o) => o === '')) throw badId('mount options', v, 'contain an empty option');
  return s;
}

/** A filesystem UUID, lowercase 8-4-4-4-12 hex (as mkfs is told to use it and blkid prints it). */
export function checkUuid(v: unknown): string {
  if (typeof v !== 'string' || !UUID.test(v)) throw badId('filesystem UUID', v, 'is not a lowercase 8-4-4-4-12 hex UUID');
  return v;
}

/** A device path or similar free text: a string without control characters (may be empty). */
export function checkDeviceText(what: string, v: unknown): string {
  return checkText(what, v, MAX_PATH_BYTES);
}

/** A byte size: a safe integer, > 0, a multiple of 512, at most MAX_SIZE_BYTES. */
export function checkSize(v: unknown, what = 'size'): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) {
    throw new ThinjournalError('ERR_BAD_SIZE', `${what} ${show(v)} is not an integer number of bytes`, { value: v });
  }
  if (v <= 0) throw new ThinjournalError('ERR_BAD_SIZE', `${what} ${v} is not positive`, { value: v });
  if (v % SECTOR_BYTES !== 0) throw new ThinjournalError('ERR_BAD_SIZE', `${what} ${v} is not a multiple of ${SECTOR_BYTES} bytes (a sector)`, { value: v });
  if (v > MAX_SIZE_BYTES) throw new ThinjournalError('ERR_BAD_SIZE', `${what} ${v} is beyond the addressable range (${MAX_SIZE_BYTES} bytes)`, { value: v });
  return v;
}

/** True for a dm-thin block size: a multiple of 64 KiB in 64 KiB … 1 GiB. */
export function isValidBlockSize(v: number): boolean {
  return Number.isSafeInteger(v) && v >= BLOCK_SIZE_MIN && v <= BLOCK_SIZE_MAX && v % BLOCK_SIZE_MIN === 0;
}

export function checkBlockSize(v: unknown): number {
  if (typeof v !== 'number' || !isValidBlockSize(v)) {
    throw new ThinjournalError('ERR_BAD_SIZE', `block size ${show(v)} is not a multiple of 64 KiB between 64 KiB and 1 GiB`, { value: v });
  }
  return v;
}

export function checkUint(v: unknown, what: string, code: 'ERR_BAD_SIZE' | 'ERR_BAD_OPTION' = 'ERR_BAD_SIZE'): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new ThinjournalError(code, `${what} ${show(v)} is not an integer ≥ 0`, { value: v });
  }
  return v;
}
