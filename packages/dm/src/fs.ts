/**
 * Filesystems on block devices: superblock probing, the mount table, and the system tools that make and
 * grow filesystems. Tool failures carry the exit status and stderr (ERR_FS_TOOL).
 */
import { execFile } from 'node:child_process';
import { open, readFile, realpath, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ThinjournalError } from '@thinjournal/spec';
import { fromNative } from './errors.js';

export type FsType = 'ext4' | 'xfs';

export function isFsType(v: unknown): v is FsType {
  return v === 'ext4' || v === 'xfs';
}

/** ext2/3/4: s_magic 0xEF53 (LE) at byte 1024+56. xfs: "XFSB" at byte 0. */
export function fsTypeFromSuperblock(head: Buffer): FsType | null {
  if (head.length >= 4 && head.toString('latin1', 0, 4) === 'XFSB') return 'xfs';
  // The ext4 driver mounts ext2 and ext3 too; they share the magic, so all are reported as 'ext4'.
  if (head.length >= 1024 + 58 && head.readUInt16LE(1024 + 56) === 0xef53) return 'ext4';
  return null;
}

/**
 * Where each filesystem keeps its UUID, 16 bytes in order (a UUID is a byte string, never byte-swapped):
 *  - ext4: `struct ext4_super_block` starts at byte 1024; `s_uuid[16]` is at 0x68 in it (after
 *    s_feature_ro_compat at 0x64; e2fsprogs lib/ext2fs/ext2_fs.h, the kernel's fs/ext4/ext4.h).
 *  - xfs: `struct xfs_dsb` starts at byte 0; `sb_uuid` is at 32, after sb_magicnum (4), sb_blocksize (4),
 *    sb_dblocks, sb_rblocks, sb_rextents (8 each) (fs/xfs/libxfs/xfs_format.h). It is the user-visible
 *    UUID (blkid's); a v5 filesystem whose UUID was changed keeps the original in sb_meta_uuid.
 */
export const EXT4_UUID_OFFSET = 1024 + 0x68;
export const XFS_UUID_OFFSET = 32;

/** A filesystem UUID as mkfs takes it and blkid prints it: 8-4-4-4-12 lowercase hex. */
export const FS_UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const NIL_UUID = '00000000-0000-0000-0000-000000000000';

/** 16 bytes → the canonical 8-4-4-4-12 lowercase form. */
export function formatUuid(bytes: Buffer): string {
  if (bytes.length !== 16) throw new TypeError(`a UUID is 16 bytes, not ${bytes.length}`);
  const h = bytes.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The filesystem UUID in a device's first 4 KiB (canonical lowercase), or null when there is no ext4/xfs superblock. */
export function fsUuidFromSuperblock(head: Buffer): string | null {
  const t = fsTypeFromSuperblock(head);
  const at = t === 'xfs' ? XFS_UUID_OFFSET : t === 'ext4' ? EXT4_UUID_OFFSET : -1;
  if (at < 0 || head.length < at + 16) return null;
  return formatUuid(head.subarray(at, at + 16));
}

/** The first 4 KiB of a device (fewer when it is smaller); open/read errors are ERR_KERNEL. */
async function readHead(device: string): Promise<Buffer> {
  try {
    const fh = await open(device, 'r');
    try {
      const buf = Buffer.alloc(4096);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw fromNative(err);
  }
}

/** Reads the first 4 KiB of `device` and names its filesystem; ERR_FS_UNKNOWN when it is neither. */
export async function probeFsType(device: string): Promise<FsType> {
  const t = fsTypeFromSuperblock(await readHead(device));
  if (!t) throw new ThinjournalError('ERR_FS_UNKNOWN', `${device}: no ext4 or xfs superblock`, { device });
  return t;
}

/**
 * The UUID of the filesystem on `device`, read from its superblock (no blkid process): canonical
 * lowercase, exactly what `blkid -o value -s UUID` prints — except for the nil UUID, which blkid does not
 * print and this returns as is. ERR_FS_UNKNOWN when there is no ext4 or xfs superblock.
 */
export async function fsUuid(device: string): Promise<string> {
  const u = fsUuidFromSuperblock(await readHead(device));
  if (u === null) throw new ThinjournalError('ERR_FS_UNKNOWN', `${device}: no ext4 or xfs superblock`, { device });
  return u;
}

export interface MountEntry {
  mountPoint: string;
  source: string;
  fsType: string;
  options: string[];
  /** "major:minor" of the mounted device. */
  dev: string;
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Parses /proc/self/mountinfo (proc(5)). */
export function parseMountInfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const a = line.slice(0, sep).split(' ');
    const b = line.slice(sep + 3).split(' ');
    if (a.length < 6 || b.length < 2) continue;
    out.push({ mountPoint: unescapeMount(a[4]!), dev: a[2]!, options: a[5]!.split(','), fsType: b[0]!, source: unescapeMount(b[1]!) });
  }
  return out;
}

/** The entry mounted at `mountPoint` (the topmost when stacked), or null. */
export async function mounted(mountPoint: string): Promise<MountEntry | null> {
  const entries = parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
  const hits = entries.filter((e) => e.mountPoint === mountPoint);
  return hits.length ? hits[hits.length - 1]! : null;
}

export interface ToolResult { stdout: string; stderr: string }

/** Runs a system tool; a non-zero exit (or a spawn failure) is ERR_FS_TOOL with `status` and `stderr`. */
export function runTool(tool: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    execFile(tool, args, { timeout: opts.timeoutMs ?? 300_000, maxBuffer: 64 << 20, env: { ...process.env, LC_ALL: 'C' } }, (err, stdout, stderr) => {
      if (!err) return resolve({ stdout, stderr });
      const e = err as NodeJS.ErrnoException & { code?: string | number; signal?: string };
      const status = typeof e.code === 'number' ? e.code : null;
      reject(new ThinjournalError('ERR_FS_TOOL', `${tool} ${args.join(' ')} failed (${status !== null ? `exit ${status}` : e.signal ?? e.code}): ${String(stderr).trim().split('\n').slice(-3).join(' | ')}`, {
        cause: err, tool, args, status, signal: e.signal ?? null, stderr: String(stderr),
      }));
    });
  });
}

export interface MkfsOptions {
  /** The new filesystem's UUID, canonical lowercase (mkfs.ext4 -U, mkfs.xfs -m uuid=); default: the tool's random one. */
  uuid?: string;
  /** Extra arguments for the tool, after ours and before the device (Docker's dm.mkfsarg). */
  args?: readonly string[];
}

/**
 * Validates mkfs input before any effect: `type` ext4/xfs and `args` an array of strings without NUL
 * (TypeError otherwise); `uuid` canonical 8-4-4-4-12 lowercase hex and not the nil UUID (ERR_DM_ARG:
 * mkfs.ext4 -U would read the nil UUID as "clear", and xfs refuses to mount a filesystem without one).
 */
export function checkMkfsOptions(type: unknown, opts: MkfsOptions = {}): void {
  if (type !== 'ext4' && type !== 'xfs') throw new TypeError(`unsupported filesystem type ${String(type)}`);
  if (typeof opts !== 'object' || opts === null) throw new TypeError('mkfs options must be an object');
  const { uuid, args } = opts;
  if (uuid !== undefined && (typeof uuid !== 'string' || !FS_UUID_RE.test(uuid) || uuid === NIL_UUID)) {
    throw new ThinjournalError('ERR_DM_ARG', `filesystem uuid ${JSON.stringify(uuid)} is not a canonical lowercase 8-4-4-4-12 UUID (nor may it be nil)`, { uuid });
  }
  if (args !== undefined) {
    if (!Array.isArray(args)) throw new TypeError('mkfs args must be an array of strings');
    for (const a of args) if (typeof a !== 'string' || a.includes('\0')) throw new TypeError(`mkfs argument ${JSON.stringify(a)} is not a string without NUL`);
  }
}

/**
 * The command line of mkfs (forced: the caller has decided the device is ours to format): our options,
 * then the caller's `args`, then the UUID (last, so it holds even when `args` name one too), then the
 * device. Inputs are assumed valid (checkMkfsOptions).
 */
export function mkfsCommand(device: string, type: FsType, opts: MkfsOptions = {}): { tool: string; args: string[] } {
  const extra = [...(opts.args ?? [])];
  if (type === 'ext4') {
    return { tool: 'mkfs.ext4', args: ['-q', '-F', '-E', 'lazy_itable_init=1,lazy_journal_init=1', ...extra, ...(opts.uuid ? ['-U', opts.uuid] : []), device] };
  }
  return { tool: 'mkfs.xfs', args: ['-q', '-f', ...extra, ...(opts.uuid ? ['-m', `uuid=${opts.uuid}`] : []), device] };
}

/** mkfs.ext4 / mkfs.xfs on `device`, with the UUID and extra arguments of `opts` (checked first: no effect when invalid). */
export async function mkfs(device: string, type: FsType, opts: MkfsOptions = {}): Promise<void> {
  checkMkfsOptions(type, opts);
  const c = mkfsCommand(device, type, opts);
  await runTool(c.tool, c.args);
}

/** A Linux dev_t (as `stat` gives st_dev / st_rdev) split into major and minor (the kernel's new_decode_dev). */
export function devNumbers(dev: number): { major: number; minor: number } {
  return { major: Math.floor(dev / 256) & 0xfff, minor: (dev & 0xff) | (Math.floor(dev / 4096) & 0xfff00) };
}

/** The kernel's name of the block device a node points at (`dm-3`, `loop0`), through /sys/dev/block/<major>:<minor>. */
export async function blockDeviceKernelName(device: string): Promise<string> {
  const { major, minor } = devNumbers((await stat(device)).rdev);
  return path.basename(await realpath(`/sys/dev/block/${major}:${minor}`));
}

/** sysfs file of XFS's ENOSPC retry limit for metadata writes of the XFS mounted from block device `bdev`. */
export function xfsNospaceMaxRetriesFile(bdev: string): string {
  return `/sys/fs/xfs/${bdev}/error/metadata/ENOSPC/max_retries`;
}

/**
 * XFS's retry limit for metadata writes that fail with ENOSPC (Docker's dm.xfs_nospace_max_retries), for the
 * mounted XFS on `device`: /sys/fs/xfs/<bdev>/error/metadata/ENOSPC/max_retries (the kernel's
 * Documentation/admin-guide/xfs.rst, "Error handling"). -1 retries forever, 0 fails at once. The block
 * device's kernel name (dm-N) comes from its device number through /sys/dev/block. No such directory (not a
 * mounted XFS): ERR_KERNEL ENOENT.
 */
export async function xfsSetNospaceMaxRetries(device: string, retries: number): Promise<void> {
  if (!Number.isSafeInteger(retries) || retries < -1) throw new TypeError(`retries must be an integer ≥ -1, not ${String(retries)}`);
  try {
    await writeFile(xfsNospaceMaxRetriesFile(await blockDeviceKernelName(device)), String(retries));
  } catch (err) {
    throw fromNative(err);
  }
}

/** Grows a mounted filesystem to its device's size: resize2fs <device> / xfs_growfs <mountpoint>. */
export async function growFs(device: string, mountPoint: string, type: FsType): Promise<void> {
  if (type === 'ext4') await runTool('resize2fs', [device]);
  else if (type === 'xfs') await runTool('xfs_growfs', [mountPoint]);
  else throw new TypeError(`unsupported filesystem type ${String(type)}`);
}

/**
 * What a filesystem's superblock says about its size, and what its grow tool needs to predict how far it
 * would grow it. Sizes in filesystem blocks.
 */
export interface FsGeometry {
  readonly type: FsType;
  /** bytes per filesystem block */
  readonly blockSize: number;
  /** the filesystem's size in blocks (ext4 s_blocks_count, xfs sb_dblocks) */
  readonly blocks: number;
  /** blocks per allocation group (ext4 block group, xfs AG) */
  readonly groupBlocks: number;
  /** the block group 0 starts at (ext4 s_first_data_block; 0 for xfs) */
  readonly firstBlock: number;
  /**
   * A grow leaves out a last group shorter than this many blocks (when it is not the only group). A lower
   * bound of the tool's threshold, so that a prediction from it never says "nothing to grow" wrongly.
   */
  readonly minTailBlocks: number;
  /** the tool grows to a multiple of this many blocks */
  readonly alignBlocks: number;
  /** the most blocks this filesystem can address */
  readonly maxBlocks: number;
}

/**
 * The size fields of an ext4 or xfs superblock in a device's first 4 KiB; null when there is neither (or the
 * fields are out of range). Offsets:
 *  - ext4 (`struct ext4_super_block` at byte 1024, little-endian): s_blocks_count_lo 0x04, s_first_data_block
 *    0x14, s_log_block_size 0x18, s_blocks_per_group 0x20, s_inodes_per_group 0x28, s_inode_size 0x58 (u16),
 *    s_feature_incompat 0x60 (INCOMPAT_64BIT 0x80), s_blocks_count_hi 0x150.
 *  - xfs (`struct xfs_dsb` at byte 0, big-endian): sb_blocksize 4, sb_dblocks 8 (u64), sb_agblocks 84.
 * Growth rules the prediction follows: resize2fs grows to the device's size rounded down to the page size
 * (4 KiB), and drops a last group of fewer than its overhead + 50 blocks (overhead ≥ the group's inode table
 * + 2 bitmaps); xfs_growfs drops a last AG of fewer than XFS_MIN_AG_BLOCKS (64).
 */
export function fsGeometryFromSuperblock(head: Buffer): FsGeometry | null {
  const t = fsTypeFromSuperblock(head);
  if (t === 'ext4') {
    if (head.length < 2048) return null;
    const sb = head.subarray(1024, 2048);
    const log = sb.readUInt32LE(0x18);
    if (log > 6) return null;
    const blockSize = 1024 << log;
    const is64 = (sb.readUInt32LE(0x60) & 0x80) !== 0;
    const blocks = sb.readUInt32LE(0x04) + (is64 ? sb.readUInt32LE(0x150) * 2 ** 32 : 0);
    const groupBlocks = sb.readUInt32LE(0x20);
    const inodeSize = sb.readUInt16LE(0x58) || 128;
    const inodeTable = Math.ceil((sb.readUInt32LE(0x28) * inodeSize) / blockSize);
    if (groupBlocks === 0 || !Number.isSafeInteger(blocks)) return null;
    return {
      type: 'ext4', blockSize, blocks, groupBlocks, firstBlock: sb.readUInt32LE(0x14), minTailBlocks: inodeTable + 2 + 50,
      alignBlocks: Math.max(1, 4096 / blockSize), maxBlocks: is64 ? 2 ** 48 - 1 : 2 ** 32 - 1,
    };
  }
  if (t === 'xfs') {
    if (head.length < 92) return null;
    const blockSize = head.readUInt32BE(4);
    const blocks = Number(head.readBigUInt64BE(8));
    const groupBlocks = head.readUInt32BE(84);
    if (blockSize < 512 || groupBlocks === 0 || !Number.isSafeInteger(blocks)) return null;
    return { type: 'xfs', blockSize, blocks, groupBlocks, firstBlock: 0, minTailBlocks: 64, alignBlocks: 1, maxBlocks: Number.MAX_SAFE_INTEGER };
  }
  return null;
}

/** The filesystem's size in bytes. */
export function fsBytes(g: FsGeometry): number {
  return g.blocks * g.blockSize;
}

/**
 * How many blocks the grow tool would give the filesystem on a device of `deviceBytes` — never fewer than
 * the tool would (see fsGeometryFromSuperblock), and never fewer than it has (a grow never shrinks). Pure.
 */
export function fsGrowTarget(g: FsGeometry, deviceBytes: number): number {
  let n = Math.floor(deviceBytes / g.blockSize);
  n -= n % g.alignBlocks;
  n = Math.min(n, g.maxBlocks);
  const span = n - g.firstBlock;
  const tail = span % g.groupBlocks;
  if (span > g.groupBlocks && tail > 0 && tail < g.minTailBlocks) n -= tail;
  return Math.max(n, g.blocks);
}

/** The grow tool would enlarge this filesystem on a device of `deviceBytes`. Pure. */
export function fsNeedsGrow(g: FsGeometry, deviceBytes: number): boolean {
  return fsGrowTarget(g, deviceBytes) > g.blocks;
}

/** The size fields of the filesystem on `device` (its superblock, no tool); ERR_FS_UNKNOWN when there is no ext4 or xfs superblock. */
export async function fsGeometry(device: string): Promise<FsGeometry> {
  const g = fsGeometryFromSuperblock(await readHead(device));
  if (!g) throw new ThinjournalError('ERR_FS_UNKNOWN', `${device}: no ext4 or xfs superblock with a valid geometry`, { device });
  return g;
}
