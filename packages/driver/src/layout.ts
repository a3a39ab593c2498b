/**
 * Where a driver keeps its files under `home`, and the file-system side of the embedded default:
 *
 *   <home>/                 0700
 *     journal/              0700  the write-ahead journal (LevelDB)
 *     devicemapper/         0700  loopback backing files (only without dm.thinpooldev / dm.datadev)
 *       data                0600  sparse, dm.loopdatasize bytes
 *       metadata            0600  sparse, dm.loopmetadatasize bytes
 *     mnt/                  0700
 *       <id>/               0700  mount point of device <id> (Driver.get); ids cannot escape it (ERR_BAD_ID)
 *
 * The files are real on every backend. A backend with a namespace of its own (supports.hostPaths false: the
 * model, whose in-memory kernel must find the loop file and the mount point) is told of each directory and
 * file made here; a backend on the host's paths ignores that.
 */
import { chmodSync, closeSync, existsSync, fsyncSync, ftruncateSync, mkdirSync, openSync, statSync } from 'node:fs';
import path from 'node:path';
import { ThinjournalError } from '@thinjournal/spec';
import { devNumbers, type Backend } from '@thinjournal/dm';

export interface Layout {
  readonly home: string;
  readonly journal: string;
  readonly devicemapper: string;
  readonly dataFile: string;
  readonly metadataFile: string;
  readonly mnt: string;
}

export function layoutOf(home: string): Layout {
  const dm = path.join(home, 'devicemapper');
  return {
    home,
    journal: path.join(home, 'journal'),
    devicemapper: dm,
    dataFile: path.join(dm, 'data'),
    metadataFile: path.join(dm, 'metadata'),
    mnt: path.join(home, 'mnt'),
  };
}

/** `home` as given must be an absolute, normalised path without NUL (ERR_BAD_PATH). */
export function checkHome(home: unknown): string {
  if (typeof home !== 'string') throw new TypeError('home must be a string');
  const why = home === '' ? 'is empty'
    : home.includes('\0') ? 'contains NUL'
    : !path.isAbsolute(home) ? 'is not absolute'
    : Buffer.byteLength(home) > 3000 ? 'is over 3000 bytes'
    : path.normalize(home).replace(/\/$/, '') !== home.replace(/\/$/, '') || home === '/' ? 'is not normalised (or is /)'
    : null;
  if (why) throw new ThinjournalError('ERR_BAD_PATH', `home ${JSON.stringify(home)} ${why}`, { path: home });
  return home.replace(/\/$/, '');
}

/** A path must lie strictly inside `dir` once resolved (mount points stay inside home). */
export function checkInside(dir: string, p: unknown, what: string): string {
  if (typeof p !== 'string') throw new TypeError(`${what} must be a string`);
  if (p.includes('\0')) throw new ThinjournalError('ERR_BAD_PATH', `${what} ${JSON.stringify(p)} contains NUL`, { path: p });
  const r = path.resolve(p);
  if (r !== p.replace(/\/$/, '') || !r.startsWith(dir + path.sep)) {
    throw new ThinjournalError('ERR_BAD_PATH', `${what} ${JSON.stringify(p)} is not a normalised absolute path inside ${dir}`, { path: p });
  }
  return r;
}

/** mkdir -p with `mode` for every directory it creates, and `mode` enforced on the last one. */
export function ensureDir(b: Backend, dir: string, mode = 0o700): void {
  mkdirSync(dir, { recursive: true, mode });
  chmodSync(dir, mode);
  b.hostDirectoryMade(dir);
}

/** ensureDir, and the directory entry made durable (its parent fsynced) when it was created. */
export function ensureDurableDir(b: Backend, dir: string, mode = 0o700): void {
  const existed = existsSync(dir);
  ensureDir(b, dir, mode);
  if (existed) return;
  const fd = openSync(path.dirname(dir), 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * A sparse file of `size` bytes, created 0600 if missing (an existing one is kept as it is: it may hold the
 * pool). Returns whether it was created.
 */
export function ensureSparseFile(b: Backend, file: string, size: number): boolean {
  let created = false;
  if (!existsSync(file)) {
    const fd = openSync(file, 'wx', 0o600);
    try {
      ftruncateSync(fd, size);
    } finally {
      closeSync(fd);
    }
    created = true;
  }
  chmodSync(file, 0o600);
  b.hostFileMade(file, statSync(file).size);
  return created;
}

/** Grows a loopback file to `size` bytes (sparse; never shrinks), and tells the backend. */
export function growSparseFile(b: Backend, file: string, size: number): void {
  const fd = openSync(file, 'r+');
  try {
    if (statSync(file).size < size) ftruncateSync(fd, size);
  } finally {
    closeSync(fd);
  }
  b.hostFileGrown(file, size);
}

/** The pool and device name prefix Docker derives from the home directory: `<prefix>-<major>:<minor>-<inode>`. */
export function devicePrefixFor(home: string, prefix = 'thinjournal'): string {
  const st = statSync(home);
  const { major, minor } = devNumbers(st.dev);
  return `${prefix}-${major}:${minor}-${st.ino}`;
}
