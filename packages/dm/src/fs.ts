/**
 * Filesystems on block devices: superblock probing, the mount table, and the system tools that make and
 * grow filesystems. Tool failures carry the exit status and stderr (ERR_FS_TOOL).
 */
import { execFile } from 'node:child_process';
import { open, readFile } from 'node:fs/promises';
import { ThinjournalError } from '@thinjournal/spec';
import { fromNative } from './errors.js';

export type FsType = 'ext4' | 'xfs';

/** ext2/3/4: s_magic 0xEF53 (LE) at byte 1024+56. xfs: "XFSB" at byte 0. */
export function fsTypeFromSuperblock(head: Buffer): FsType | null {
  if (head.length >= 4 && head.toString('latin1', 0, 4) === 'XFSB') return 'xfs';
  // The ext4 driver mounts ext2 and ext3 too; they share the magic, so all are reported as 'ext4'.
  if (head.length >= 1024 + 58 && head.readUInt16LE(1024 + 56) === 0xef53) return 'ext4';
  return null;
}

/** Reads the first 4 KiB of `device` and names its filesystem; ERR_FS_UNKNOWN when it is neither. */
export async function probeFsType(device: string): Promise<FsType> {
  let head: Buffer;
  try {
    const fh = await open(device, 'r');
    try {
      const buf = Buffer.alloc(4096);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      head = buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  } catch (err) {
    throw fromNative(err);
  }
  const t = fsTypeFromSuperblock(head);
  if (!t) throw new ThinjournalError('ERR_FS_UNKNOWN', `${device}: no ext4 or xfs superblock`, { device });
  return t;
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

/** mkfs.ext4 / mkfs.xfs on `device` (forced: the caller has decided the device is ours to format). */
export async function mkfs(device: string, type: FsType): Promise<void> {
  if (type === 'ext4') await runTool('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=1,lazy_journal_init=1', device]);
  else if (type === 'xfs') await runTool('mkfs.xfs', ['-q', '-f', device]);
  else throw new TypeError(`unsupported filesystem type ${String(type)}`);
}

/** Grows a mounted filesystem to its device's size: resize2fs <device> / xfs_growfs <mountpoint>. */
export async function growFs(device: string, mountPoint: string, type: FsType): Promise<void> {
  if (type === 'ext4') await runTool('resize2fs', [device]);
  else if (type === 'xfs') await runTool('xfs_growfs', [mountPoint]);
  else throw new TypeError(`unsupported filesystem type ${String(type)}`);
}
