/**
 * The dm.* storage options of Docker's devmapper driver, parsed strictly, with Docker's defaults.
 * The option table (defaults, accepted forms, rules) is in packages/model/README.md; keep the two in step.
 *
 * Pure: facts Docker probes at run time (is XFS usable? does the kernel support deferred removal?) come in
 * as `env`. Every error is ERR_BAD_OPTION and its message names the option and quotes the offending text;
 * the error also carries `option` and `text`.
 */
import { ThinjournalError } from '@thinjournal/spec';
import { BLOCK_SIZE_MAX, BLOCK_SIZE_MIN, MAX_DM_NAME_BYTES, SECTOR_BYTES, MAX_SIZE_BYTES } from './validate.js';

export const KIB = 1024;
export const MIB = 1024 * KIB;
export const GIB = 1024 * MIB;

/** Docker's defaults (daemon/graphdriver/devmapper). */
export const DEFAULTS = Object.freeze({
  baseSize: 10 * GIB,
  loopDataSize: 100 * GIB,
  loopMetadataSize: 2 * GIB,
  blockSize: 64 * KIB,
  minFreeSpacePercent: 10,
  /** libdm's LOG_FATAL: only fatal libdm messages reach the daemon log unless raised. */
  libdmLogLevel: 2,
  thinpPercent: 95,
  thinpMetaPercent: 1,
  thinpAutoextendThreshold: 80,
  thinpAutoextendPercent: 20,
  /** the pool name Docker's direct-lvm setup creates (volume group `docker`, LV `thinpool`). */
  directLvmPoolName: 'docker-thinpool',
});

export const LIBDM_LOG_LEVEL_MIN = 2; // LOG_FATAL
export const LIBDM_LOG_LEVEL_MAX = 7; // LOG_DEBUG

export const OPTION_NAMES = [
  'dm.thinpooldev', 'dm.basesize', 'dm.loopdatasize', 'dm.loopmetadatasize', 'dm.fs', 'dm.mkfsarg', 'dm.mountopt',
  'dm.datadev', 'dm.metadatadev', 'dm.blocksize', 'dm.blkdiscard', 'dm.override_udev_sync_check',
  'dm.use_deferred_removal', 'dm.use_deferred_deletion', 'dm.min_free_space', 'dm.xfs_nospace_max_retries',
  'dm.libdm_log_level', 'dm.directlvm_device', 'dm.directlvm_device_force', 'dm.thinp_percent',
  'dm.thinp_metapercent', 'dm.thinp_autoextend_threshold', 'dm.thinp_autoextend_percent',
] as const;
export type OptionName = (typeof OPTION_NAMES)[number];

/** Options that may be given more than once: mkfsarg accumulates, mountopt joins with commas (as Docker). */
const REPEATABLE: ReadonlySet<OptionName> = new Set(['dm.mkfsarg', 'dm.mountopt']);

/** What Docker would probe; absent facts take the conservative answer noted on each field. */
export interface OptionsEnv {
  /** mkfs.xfs present and the kernel has xfs. Default true (Docker's preferred filesystem). */
  readonly xfsSupported?: boolean;
  /** dm driver ≥ 4.27 (and our ioctl layer) can do deferred removal. Default false: deferred modes off. */
  readonly deferredRemovalSupported?: boolean;
}

export interface DirectLvmOptions {
  readonly device: string;
  readonly force: boolean;
  readonly thinpPercent: number;
  readonly thinpMetaPercent: number;
  readonly autoextendThreshold: number;
  readonly autoextendPercent: number;
}

export interface DmOptions {
  /** dm.thinpooldev without a `/dev/mapper/` prefix; with direct-lvm, `docker-thinpool`; null = our own pool. */
  readonly thinPoolDevice: string | null;
  readonly baseSize: number;
  /** dm.basesize was given: an existing base image grows to it (Docker's checkGrowBaseDeviceFS). */
  readonly baseSizeGiven: boolean;
  readonly loopDataSize: number;
  readonly loopMetadataSize: number;
  readonly fs: 'ext4' | 'xfs';
  readonly mkfsArgs: readonly string[];
  /** dm.mountopt values joined with commas; "" when none. */
  readonly mountOptions: string;
  readonly dataDevice: string | null;
  readonly metadataDevice: string | null;
  readonly blockSize: number;
  readonly blkDiscard: boolean;
  readonly overrideUdevSyncCheck: boolean;
  readonly useDeferredRemoval: boolean;
  readonly useDeferredDeletion: boolean;
  readonly minFreeSpacePercent: number;
  /** null: leave the kernel's XFS default. */
  readonly xfsNospaceMaxRetries: number | null;
  readonly libdmLogLevel: number;
  readonly directLvm: DirectLvmOptions | null;
  /** The pool is built on sparse loopback files under home (no thinpooldev, datadev or direct-lvm). */
  readonly loopback: boolean;
  /** Exactly the options given, normalised key → value text (repeatable ones as a JSON array of the texts). */
  readonly given: Readonly<Record<string, string>>;
}

function bad(option: string, text: string, why: string): ThinjournalError {
  return new ThinjournalError('ERR_BAD_OPTION', `${option}=${JSON.stringify(text)}: ${why}`, { option, text });
}

const SIZE = /^(\d+)(?:\.(\d+))? ?([kmgtp]?)(i?)(b?)$/i;
const SCALE: Record<string, number> = { '': 1, k: KIB, m: MIB, g: GIB, t: GIB * KIB, p: GIB * MIB };

/**
 * A size as Docker's units.RAMInBytes reads it: a decimal number, an optional space, an optional binary unit
 * k/m/g/t/p (any case, 1024-based), an optional `i` and an optional `b`: `10G`, `10GB`, `512MiB`, `1.5g`,
 * `65536`. The result must be a whole number of bytes and a safe integer; signs, hex, exponents are refused.
 */
export function parseSize(option: string, text: string): number {
  const m = SIZE.exec(text);
  if (!m) throw bad(option, text, 'not a size (a number with an optional k/m/g/t/p unit, e.g. 10G or 512MiB)');
  const [, whole, frac = '', unit = '', i = '', b = ''] = m;
  if (i && !unit) throw bad(option, text, 'not a size ("i" without a unit)');
  void b;
  const scale = SCALE[unit.toLowerCase()]!;
  // Exact arithmetic: whole·scale + frac·scale/10^len must be an integer.
  const denom = 10n ** BigInt(frac.length);
  const num = (BigInt(whole!) * denom + BigInt(frac || '0')) * BigInt(scale);
  if (num % denom !== 0n) throw bad(option, text, 'not a whole number of bytes');
  const bytes = num / denom;
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(option, text, 'too large');
  return Number(bytes);
}

/** Go's strconv.ParseBool forms, which Docker uses: 1 t T TRUE true True / 0 f F FALSE false False. */
export function parseBool(option: string, text: string): boolean {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(text)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(text)) return false;
  throw bad(option, text, 'not a boolean (true/false, t/f, 1/0, TRUE/FALSE, True/False)');
}

/** `digits` must be a non-negative integer ≤ max; errors quote the option's whole `text`. */
function parseUintText(option: string, text: string, max: number, digits = text): number {
  if (!/^\d+$/.test(digits)) throw bad(option, text, 'not a non-negative integer');
  const n = Number(digits);
  if (!Number.isSafeInteger(n) || n > max) throw bad(option, text, `larger than ${max}`);
  return n;
}

/** A percentage: digits with an optional `%` (`requireSign`: the `%` is mandatory). */
function parsePercent(option: string, text: string, { requireSign = false } = {}): number {
  const hasSign = text.endsWith('%');
  if (requireSign && !hasSign) throw bad(option, text, 'needs a % suffix (e.g. 10%)');
  return parseUintText(option, text, 2 ** 32 - 1, hasSign ? text.slice(0, -1) : text);
}

function checkPath(option: string, text: string): string {
  if (!text.startsWith('/')) throw bad(option, text, 'not an absolute path');
  if (/[\u0000-\u001f\u007f]/.test(text)) throw bad(option, text, 'contains a control character');
  return text;
}

/** Docker's joinMountOptions: comma-join, skipping empties. */
export function joinMountOptions(a: string, b: string): string {
  if (a === '') return b;
  if (b === '') return a;
  return `${a},${b}`;
}

/**
 * Parses Docker storage options (`dm.basesize=20G`, …). Keys are case-insensitive and, like Docker, spaces
 * around the key and the value are trimmed. Unknown options, malformed values, a non-repeatable option given
 * twice and conflicting options are refused (ERR_BAD_OPTION). Nothing is probed: see `env`.
 */
export function parseOptions(options: readonly string[], env: OptionsEnv = {}): DmOptions {
  if (!Array.isArray(options)) throw new TypeError('parseOptions: options must be an array of strings');
  const values = new Map<OptionName, string[]>();
  for (const raw of options) {
    if (typeof raw !== 'string') throw new ThinjournalError('ERR_BAD_OPTION', `option ${JSON.stringify(raw)} is not a string`, { option: null, text: String(raw) });
    const eq = raw.indexOf('=');
    if (eq < 0) throw new ThinjournalError('ERR_BAD_OPTION', `option ${JSON.stringify(raw)} is not of the form key=value`, { option: raw.trim(), text: raw });
    const key = raw.slice(0, eq).trim().toLowerCase();
    const text = raw.slice(eq + 1).trim();
    if (!(OPTION_NAMES as readonly string[]).includes(key)) {
      throw new ThinjournalError('ERR_BAD_OPTION', `unknown option ${JSON.stringify(raw.slice(0, eq).trim())} (value ${JSON.stringify(text)})`, { option: key, text });
    }
    const name = key as OptionName;
    if (text === '') throw bad(name, text, 'empty value');
    const seen = values.get(name);
    if (seen && !REPEATABLE.has(name)) throw bad(name, text, `given twice (first ${JSON.stringify(seen[0])}); only dm.mkfsarg and dm.mountopt repeat`);
    if (seen) seen.push(text); else values.set(name, [text]);
  }
  const one = (n: OptionName): string | undefined => values.get(n)?.[0];
  const has = (n: OptionName): boolean => values.has(n);

  // --- each option on its own ---------------------------------------------------------------------
  const sizeOpt = (n: OptionName, dflt: number): number => {
    const t = one(n);
    if (t === undefined) return dflt;
    const v = parseSize(n, t);
    if (v === 0) throw bad(n, t, 'must be greater than 0');
    if (v % SECTOR_BYTES !== 0) throw bad(n, t, `not a multiple of ${SECTOR_BYTES} bytes`);
    if (v > MAX_SIZE_BYTES) throw bad(n, t, 'too large');
    return v;
  };
  const baseSize = sizeOpt('dm.basesize', DEFAULTS.baseSize);
  const loopDataSize = sizeOpt('dm.loopdatasize', DEFAULTS.loopDataSize);
  const loopMetadataSize = sizeOpt('dm.loopmetadatasize', DEFAULTS.loopMetadataSize);

  let blockSize: number = DEFAULTS.blockSize;
  const bsText = one('dm.blocksize');
  if (bsText !== undefined) {
    blockSize = parseSize('dm.blocksize', bsText);
    if (blockSize < BLOCK_SIZE_MIN || blockSize > BLOCK_SIZE_MAX || blockSize % BLOCK_SIZE_MIN !== 0) {
      throw bad('dm.blocksize', bsText, 'must be a multiple of 64K between 64K and 1G');
    }
  }

  const fsText = one('dm.fs');
  if (fsText !== undefined && fsText !== 'ext4' && fsText !== 'xfs') throw bad('dm.fs', fsText, 'unsupported filesystem (ext4 or xfs)');
  const fs: 'ext4' | 'xfs' = (fsText as 'ext4' | 'xfs' | undefined) ?? (env.xfsSupported === false ? 'ext4' : 'xfs');
  if (fsText === 'xfs' && env.xfsSupported === false) throw bad('dm.fs', fsText, 'xfs is not supported here (no mkfs.xfs or no kernel xfs)');

  const mkfsArgs = values.get('dm.mkfsarg') ?? [];
  for (const a of mkfsArgs) if (/[\u0000-\u001f\u007f]/.test(a)) throw bad('dm.mkfsarg', a, 'contains a control character');
  let mountOptions = '';
  for (const t of values.get('dm.mountopt') ?? []) {
    if (/\s|[\u0000-\u001f\u007f]/.test(t) || t.split(',').some((o) => o === '')) throw bad('dm.mountopt', t, 'not a comma-separated list of mount options');
    mountOptions = joinMountOptions(mountOptions, t);
  }

  let thinPoolDevice: string | null = null;
  const tpText = one('dm.thinpooldev');
  if (tpText !== undefined) {
    thinPoolDevice = tpText.startsWith('/dev/mapper/') ? tpText.slice('/dev/mapper/'.length) : tpText;
    if (thinPoolDevice === '' || thinPoolDevice.includes('/') || /[\u0000-\u001f\u007f]/.test(thinPoolDevice)
      || Buffer.byteLength(thinPoolDevice) > MAX_DM_NAME_BYTES || thinPoolDevice === '.' || thinPoolDevice === '..') {
      throw bad('dm.thinpooldev', tpText, 'not a device-mapper device name (a name, or /dev/mapper/<name>, of at most 127 bytes)');
    }
  }
  const dataDevice = has('dm.datadev') ? checkPath('dm.datadev', one('dm.datadev')!) : null;
  const metadataDevice = has('dm.metadatadev') ? checkPath('dm.metadatadev', one('dm.metadatadev')!) : null;
  const lvmDevice = has('dm.directlvm_device') ? checkPath('dm.directlvm_device', one('dm.directlvm_device')!) : null;

  const boolOpt = (n: OptionName): boolean | undefined => (has(n) ? parseBool(n, one(n)!) : undefined);
  const blkDiscardGiven = boolOpt('dm.blkdiscard');
  const overrideUdevSyncCheck = boolOpt('dm.override_udev_sync_check') ?? false;
  const lvmForceGiven = boolOpt('dm.directlvm_device_force');
  const supported = env.deferredRemovalSupported === true;
  const removalGiven = boolOpt('dm.use_deferred_removal');
  const deletionGiven = boolOpt('dm.use_deferred_deletion');

  let minFreeSpacePercent: number = DEFAULTS.minFreeSpacePercent;
  const mfText = one('dm.min_free_space');
  if (mfText !== undefined) {
    minFreeSpacePercent = parsePercent('dm.min_free_space', mfText, { requireSign: true });
    if (minFreeSpacePercent >= 100) throw bad('dm.min_free_space', mfText, 'must be less than 100%');
  }

  const retriesText = one('dm.xfs_nospace_max_retries');
  const xfsNospaceMaxRetries = retriesText === undefined ? null : parseUintText('dm.xfs_nospace_max_retries', retriesText, Number.MAX_SAFE_INTEGER);

  let libdmLogLevel: number = DEFAULTS.libdmLogLevel;
  const llText = one('dm.libdm_log_level');
  if (llText !== undefined) {
    if (!/^-?\d+$/.test(llText)) throw bad('dm.libdm_log_level', llText, 'not an integer');
    libdmLogLevel = Number(llText);
    if (libdmLogLevel < LIBDM_LOG_LEVEL_MIN || libdmLogLevel > LIBDM_LOG_LEVEL_MAX) {
      throw bad('dm.libdm_log_level', llText, `must be in range [${LIBDM_LOG_LEVEL_MIN},${LIBDM_LOG_LEVEL_MAX}]`);
    }
  }

  const pct = (n: OptionName, { allow100 }: { allow100: boolean }): number | undefined => {
    const t = one(n);
    if (t === undefined) return undefined;
    const v = parsePercent(n, t);
    if (v === 0 || v > 100 || (!allow100 && v === 100)) throw bad(n, t, `must be greater than 0 and ${allow100 ? 'at most' : 'less than'} 100`);
    return v;
  };
  const thinpPercent = pct('dm.thinp_percent', { allow100: false });
  const thinpMetaPercent = pct('dm.thinp_metapercent', { allow100: false });
  const autoextendThreshold = pct('dm.thinp_autoextend_threshold', { allow100: true });
  const autoextendPercent = pct('dm.thinp_autoextend_percent', { allow100: true });

  // --- rules across options -----------------------------------------------------------------------
  const conflict = (a: OptionName, b: OptionName, why: string): never => {
    throw new ThinjournalError('ERR_BAD_OPTION', `${a}=${JSON.stringify(one(a))} conflicts with ${b}=${JSON.stringify(one(b))}: ${why}`, { option: a, text: one(a), other: b });
  };
  const requires = (a: OptionName, b: OptionName, why: string): void => {
    if (has(a) && !has(b)) throw new ThinjournalError('ERR_BAD_OPTION', `${a}=${JSON.stringify(one(a))} needs ${b}: ${why}`, { option: a, text: one(a), other: b });
  };
  requires('dm.datadev', 'dm.metadatadev', 'a pool on block devices needs both its data and its metadata device');
  requires('dm.metadatadev', 'dm.datadev', 'a pool on block devices needs both its data and its metadata device');
  for (const loopOpt of ['dm.loopdatasize', 'dm.loopmetadatasize'] as const) {
    for (const other of ['dm.thinpooldev', 'dm.datadev', 'dm.directlvm_device'] as const) {
      if (has(loopOpt) && has(other)) conflict(loopOpt, other, 'loopback sizes only apply to the loopback files of the default pool');
    }
  }
  if (has('dm.thinpooldev') && has('dm.datadev')) conflict('dm.thinpooldev', 'dm.datadev', 'an existing pool brings its own data and metadata devices');
  if (has('dm.thinpooldev') && has('dm.directlvm_device')) conflict('dm.thinpooldev', 'dm.directlvm_device', 'direct-lvm sets up its own pool');
  if (has('dm.datadev') && has('dm.directlvm_device')) conflict('dm.datadev', 'dm.directlvm_device', 'direct-lvm sets up its own data and metadata volumes');
  if (has('dm.thinpooldev') && has('dm.blocksize')) conflict('dm.blocksize', 'dm.thinpooldev', 'an existing pool already has its block size');
  for (const lvmOpt of ['dm.directlvm_device_force', 'dm.thinp_percent', 'dm.thinp_metapercent', 'dm.thinp_autoextend_threshold', 'dm.thinp_autoextend_percent'] as const) {
    requires(lvmOpt, 'dm.directlvm_device', 'it configures direct-lvm setup');
  }
  if ((thinpPercent === undefined) !== (thinpMetaPercent === undefined)) {
    const given = thinpPercent === undefined ? 'dm.thinp_metapercent' : 'dm.thinp_percent';
    throw new ThinjournalError('ERR_BAD_OPTION', `${given}=${JSON.stringify(one(given))}: dm.thinp_percent and dm.thinp_metapercent must be given together`, { option: given, text: one(given) });
  }
  if (thinpPercent !== undefined && thinpMetaPercent !== undefined && thinpPercent + thinpMetaPercent > 100) {
    conflict('dm.thinp_percent', 'dm.thinp_metapercent', 'together they must not exceed 100');
  }
  if (removalGiven === true && env.deferredRemovalSupported === false) {
    throw bad('dm.use_deferred_removal', one('dm.use_deferred_removal')!, 'the kernel (dm driver < 4.27) does not support deferred removal');
  }
  // Docker turns both deferred modes on by default when the kernel supports deferred removal.
  const useDeferredRemoval = removalGiven ?? supported;
  const useDeferredDeletion = deletionGiven ?? (supported && useDeferredRemoval);
  if (useDeferredDeletion && !useDeferredRemoval) {
    throw bad('dm.use_deferred_deletion', one('dm.use_deferred_deletion') ?? 'true', 'deferred deletion needs deferred removal (dm.use_deferred_removal=true)');
  }
  if (retriesText !== undefined && fs === 'ext4') {
    throw bad('dm.xfs_nospace_max_retries', retriesText, 'applies to xfs only, and the filesystem is ext4');
  }
  if (dataDevice !== null && dataDevice === metadataDevice) conflict('dm.datadev', 'dm.metadatadev', 'data and metadata must be different devices');

  const directLvm: DirectLvmOptions | null = lvmDevice === null ? null : {
    device: lvmDevice,
    force: lvmForceGiven ?? false,
    thinpPercent: thinpPercent ?? DEFAULTS.thinpPercent,
    thinpMetaPercent: thinpMetaPercent ?? DEFAULTS.thinpMetaPercent,
    autoextendThreshold: autoextendThreshold ?? DEFAULTS.thinpAutoextendThreshold,
    autoextendPercent: autoextendPercent ?? DEFAULTS.thinpAutoextendPercent,
  };
  if (directLvm) thinPoolDevice = DEFAULTS.directLvmPoolName;
  const loopback = thinPoolDevice === null && dataDevice === null;

  const given: Record<string, string> = {};
  for (const n of OPTION_NAMES) {
    const v = values.get(n);
    if (v) given[n] = REPEATABLE.has(n) ? JSON.stringify(v) : v[0]!;
  }
  return Object.freeze({
    thinPoolDevice, baseSize, baseSizeGiven: has('dm.basesize'), loopDataSize, loopMetadataSize, fs,
    mkfsArgs: Object.freeze([...mkfsArgs]), mountOptions, dataDevice, metadataDevice, blockSize,
    // Docker: discard on delete re-sparsifies loopback files; on raw devices it is off unless asked for.
    blkDiscard: blkDiscardGiven ?? loopback,
    overrideUdevSyncCheck, useDeferredRemoval, useDeferredDeletion, minFreeSpacePercent, xfsNospaceMaxRetries,
    libdmLogLevel, directLvm, loopback, given: Object.freeze(given),
  });
}

/**
 * The texts of a repeatable option (dm.mkfsarg, dm.mountopt) as effectiveOptions records them: a JSON array
 * of strings. Anything else (a record written by hand, an older form) is one text, as it stands.
 */
export function recordedTexts(text: string): string[] {
  try {
    const v = JSON.parse(text) as unknown;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  } catch {
    // not JSON: one text
  }
  return [text];
}

/**
 * The options in force as a journal strmap (PoolInitialised.options): every option, effective value, in a
 * form parseOptions reads back (sizes in bytes, booleans true/false), except repeatable ones, which are JSON
 * arrays of their texts. Unset optional values (thinpooldev, datadev, …) are omitted.
 */
export function effectiveOptions(o: DmOptions): Record<string, string> {
  const out: Record<string, string> = {
    'dm.basesize': String(o.baseSize),
    'dm.blkdiscard': String(o.blkDiscard),
    'dm.blocksize': String(o.blockSize),
    'dm.fs': o.fs,
    'dm.libdm_log_level': String(o.libdmLogLevel),
    'dm.min_free_space': `${o.minFreeSpacePercent}%`,
    'dm.mkfsarg': JSON.stringify(o.mkfsArgs),
    'dm.mountopt': JSON.stringify(o.mountOptions === '' ? [] : [o.mountOptions]),
    'dm.override_udev_sync_check': String(o.overrideUdevSyncCheck),
    'dm.use_deferred_deletion': String(o.useDeferredDeletion),
    'dm.use_deferred_removal': String(o.useDeferredRemoval),
  };
  if (o.loopback) {
    out['dm.loopdatasize'] = String(o.loopDataSize);
    out['dm.loopmetadatasize'] = String(o.loopMetadataSize);
  }
  if (o.thinPoolDevice !== null && o.directLvm === null) out['dm.thinpooldev'] = o.thinPoolDevice;
  if (o.dataDevice !== null) out['dm.datadev'] = o.dataDevice;
  if (o.metadataDevice !== null) out['dm.metadatadev'] = o.metadataDevice;
  if (o.xfsNospaceMaxRetries !== null) out['dm.xfs_nospace_max_retries'] = String(o.xfsNospaceMaxRetries);
  if (o.directLvm) {
    out['dm.directlvm_device'] = o.directLvm.device;
    out['dm.directlvm_device_force'] = String(o.directLvm.force);
    out['dm.thinp_percent'] = String(o.directLvm.thinpPercent);
    out['dm.thinp_metapercent'] = String(o.directLvm.thinpMetaPercent);
    out['dm.thinp_autoextend_threshold'] = String(o.directLvm.autoextendThreshold);
    out['dm.thinp_autoextend_percent'] = String(o.directLvm.autoextendPercent);
  }
  return out;
}
