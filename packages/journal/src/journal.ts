/**
 * The write-ahead journal (journal-spec/format.md). One writer per directory; appends are validated
 * synchronously, group-committed (everything queued while a commit is in flight goes into the next single
 * `sync: true` LevelDB batch), and acknowledged only after that batch is durable. A failed commit is
 * fail-stop: the handle turns read-only and never reports success for data it could not make durable.
 */
import { mkdirSync, mkdtempSync, readdirSync, linkSync, copyFileSync, rmSync, statSync, lstatSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { ClassicLevel } from 'classic-level';
import { Observable, Subject } from 'rxjs';
import {
  ThinjournalError, ChainVerifier, chainError, validateEvent, encodeRecord, sha256, splitChunk, recordFromDecoded,
  chunkKey, checkpointKey, seqOfKey, encodeMeta, decodeMeta, encodeHead, decodeHead, encodeCheckpoint,
  decodeCheckpoint, packr, GENESIS_PREV, FORMAT_VERSION, MAX_BODY_BYTES, CHUNK_PREFIX, CHECKPOINT_PREFIX, META_KEY,
  HEAD_KEY, checkEnvelope, type ReplayRecord, type JournalEvent, type JournalRecord, type JournalHead, type JournalMeta, type ChainResult,
  type EventType, type ChainProblem,
} from '@thinjournal/spec';
import { checkStore, type StoreProblem, type TornWrite } from './leveldb-files.js';

/** The LevelDB-shaped store the journal needs (classic-level, or any abstract-level database with these). */
export type Store = ClassicLevel<string, Uint8Array>;

export interface OpenOptions {
  /** Default `actor` for appended events that name none. */
  readonly actor?: string;
  /**
   * Open for reading only, from a private copy (the original is never written and its lock never taken):
   * no tail check, appends refused. Same as `Journal.openReader`.
   */
  readonly readOnly?: boolean;
  /**
   * Create the journal when `dir` does not exist or is an empty directory (default true). false: such a
   * `dir` is ERR_NO_JOURNAL and nothing is created. Readers never create.
   */
  readonly createIfMissing?: boolean;
  /**
   * Readers only: open even when LevelDB's log ends in a torn final write (it is then `verify()`'s first
   * result) — for tools that report it. Damage of LevelDB's files is always refused: LevelDB must not be
   * asked to open files it may misread or abort on.
   */
  readonly allowTornTail?: boolean;
  /** Drop a torn tail (format.md §8) instead of refusing to open. The drop is reported in `repaired`. */
  readonly repairTornTail?: boolean;
  /** Clock for record timestamps (ms). Default Date.now. */
  readonly clock?: () => number;
  /** Bring your own store (abstract-level style), e.g. to inject faults in tests. It must not be open yet. */
  readonly store?: Store;
  /** Chunk limits (format.md §4). */
  readonly maxChunkRecords?: number;
  readonly maxChunkBytes?: number;
}

export interface ReadRange {
  /** First seq (inclusive). Default 1. */
  readonly fromSeq?: number;
  /** Last seq (inclusive). */
  readonly toSeq?: number;
  /** Only records with ts ≥ since (ms). */
  readonly since?: number;
  /** Only records with ts ≤ until (ms). */
  readonly until?: number;
  /** At most this many records. */
  readonly limit?: number;
}

export interface VerifyOptions {
  /** Called every few thousand records with the last verified seq (for progress display). */
  readonly onProgress?: (seq: number, total: number) => void;
  /** Sees every record that verified, in order (e.g. `dump --verify` prints while it checks). */
  readonly onRecord?: (rec: JournalRecord) => void;
}

export interface VerifyReport {
  /** The first problem, checked in order: LevelDB's files, the key spaces and meta, then the chain. */
  readonly result: ChainResult;
  readonly checkpoints: { readonly valid: number[]; readonly invalid: { seq: number; message: string }[] };
  /** LevelDB's files: damage found (also the result, if any), and torn final writes (never acknowledged). */
  readonly store: StoreState;
}

/** What the check of LevelDB's own files found before LevelDB opened them. */
export interface StoreState {
  readonly problems: readonly StoreProblem[];
  readonly torn: readonly TornWrite[];
}

export interface Checkpoint<S = unknown> {
  readonly seq: number;
  /** Hash of record `seq`: binds the checkpoint to this chain. */
  readonly recordHash: string;
  readonly stateHash: string;
  readonly state: S;
}

export interface AppendOptions {
  /**
   * Default true: resolve only once the records are durable (a sync write). false: resolve once LevelDB has
   * written them (they survive a crash of this process, not of the machine) and let the next sync write make
   * them durable — for records recovery can re-derive, such as TransactionCommitted (protocol.md §2 step 4).
   */
  readonly sync?: boolean;
}

interface Pending {
  readonly events: readonly JournalEvent[];
  readonly sync: boolean;
  readonly resolve: (records: JournalRecord[]) => void;
  readonly reject: (err: unknown) => void;
}

const DEFAULT_MAX_CHUNK_RECORDS = 4096;
const DEFAULT_MAX_CHUNK_BYTES = 1 << 20;
const READ_BATCH = 256;
const CHUNK_END = String.fromCharCode(CHUNK_PREFIX.charCodeAt(0) + 1);
const CHECKPOINT_END = String.fromCharCode(CHECKPOINT_PREFIX.charCodeAt(0) + 1);

/** LevelDB's own words for an error: abstract-level wraps the binding's error as `cause`. */
function levelMessage(err: unknown): { code: string; message: string } {
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const code = e.cause?.code ?? e.code ?? '';
  const message = e.cause?.message && e.cause.message !== e.message ? `${e.message ?? ''}: ${e.cause.message}` : e.message ?? String(err);
  return { code, message };
}

function levelOpenError(err: unknown, dir: string, copy?: string): ThinjournalError {
  const { code, message: raw } = levelMessage(err);
  // A reader's LevelDB opened a private copy: name the journal's own files.
  const message = copy ? raw.split(copy).join(dir) : raw;
  if (code === 'LEVEL_LOCKED' || (err as { code?: string }).code === 'LEVEL_LOCKED') {
    return new ThinjournalError('ERR_JOURNAL_LOCKED', `journal ${dir} is locked by another process or handle`, { cause: err, dir });
  }
  return levelFailure(err, dir, message, 'LevelDB refused to open it');
}

/**
 * LevelDB's status by its own words: "Corruption" (and a file it cannot find) is damage of the journal; an
 * "IO error" is the file system's (a full disk, a read-only mount, too many open files): the journal may be
 * intact, so it is not reported as corruption.
 */
function levelFailure(err: unknown, dir: string, message: string, doing: string): ThinjournalError {
  if (/IO error/.test(message) && !/Corruption/.test(message)) {
    if (/Permission denied/.test(message)) return new ThinjournalError('ERR_JOURNAL_ACCESS', `journal ${dir}: ${doing}: ${message}`, { cause: err, dir, errno: 'EACCES' });
    const errno = /No space left/.test(message) ? 'ENOSPC' : /Read-only file system/.test(message) ? 'EROFS' : /Too many open files/.test(message) ? 'EMFILE' : 'EIO';
    return new ThinjournalError('ERR_JOURNAL_IO', `journal ${dir}: ${doing}: ${message}`, { cause: err, dir, errno });
  }
  return chainError({ kind: 'corrupt', seq: 0, reason: 'store', file: dir, offset: null, message: `${doing}: ${message}` }, err);
}

/** A LevelDB error met while reading (a table block it could not read, a missing file) as corruption. */
function levelReadError(err: unknown, dir: string, copy?: string): unknown {
  if (err instanceof ThinjournalError) return err;
  const { code, message: raw } = levelMessage(err);
  const message = copy ? raw.split(copy).join(dir) : raw;
  if (!code.startsWith('LEVEL_')) return err;
  return levelFailure(err, dir, message, 'LevelDB failed to read it');
}

function errnoOf(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? '';
}

function accessError(dir: string, err: unknown): ThinjournalError {
  return new ThinjournalError('ERR_JOURNAL_ACCESS', `journal ${dir} cannot be read: ${errnoOf(err)} (${(err as Error).message})`, { cause: err, dir, errno: errnoOf(err) });
}

/** LevelDB's own file names: its presence tells a damaged database from a directory that never was one. */
const LEVELDB_FILE = /^(CURRENT|LOCK|LOG|LOG\.old|MANIFEST-\d+|\d+\.(log|ldb|sst|dbtmp))$/;

/**
 * What is at `dir`, without changing anything: nothing (absent or an empty directory), or a LevelDB
 * database. A file, a directory of other things, or one we may not read is refused here.
 */
function inspectDir(dir: string): 'absent' | 'empty' | 'store' {
  let st;
  try {
    st = statSync(dir);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return 'absent';
    if (errnoOf(err) === 'ENOTDIR') throw new ThinjournalError('ERR_NOT_A_JOURNAL', `${dir} is not a journal: a part of its path is a file`, { cause: err, dir });
    throw accessError(dir, err);
  }
  if (!st.isDirectory()) throw new ThinjournalError('ERR_NOT_A_JOURNAL', `${dir} is a file, not a journal directory`, { dir });
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    throw accessError(dir, err);
  }
  if (names.length === 0) return 'empty';
  const ours = names.filter((n) => LEVELDB_FILE.test(n));
  if (ours.length === 0 || ours.every((n) => n === 'LOCK' || n === 'LOG' || n === 'LOG.old') && !names.includes('CURRENT')) {
    const shown = names.slice(0, 5).join(', ') + (names.length > 5 ? ', …' : '');
    throw new ThinjournalError('ERR_NOT_A_JOURNAL', `${dir} is not a journal: it holds no LevelDB database (${shown})`, { dir });
  }
  try {
    readFileSync(path.join(dir, names.includes('CURRENT') ? 'CURRENT' : ours[0]!), { flag: 'r' });
  } catch (err) {
    if (errnoOf(err) === 'EACCES' || errnoOf(err) === 'EPERM') throw accessError(dir, err);
  }
  return 'store';
}

/** Names, sizes and modification times of a directory's files: changes while a writer works on it. */
function dirSignature(dir: string): string {
  try {
    return readdirSync(dir).sort().map((n) => { const st = statSync(path.join(dir, n)); return `${n}:${st.size}:${st.mtimeMs}`; }).join('|');
  } catch {
    return '';
  }
}

/** The first store problem as a chain problem (the verdict), naming the file and offset. */
function storeProblem(p: StoreProblem): ChainProblem {
  return { kind: 'corrupt', seq: 0, reason: 'store', file: p.file, offset: p.offset, message: `${p.reason}: ${p.message}` };
}

/**
 * A torn final write of LevelDB's log as the journal's torn tail (format.md §8): it holds only data that was
 * never acknowledged — if the disk kept its promises; a truncated file looks the same, so it is not dropped
 * without an operator's word (`repairTornTail`).
 */
function tornProblem(t: TornWrite): ChainProblem {
  return { kind: 'torn', seq: 0, reason: 'torn-tail', file: t.file, offset: t.offset, message: `${t.message} (${t.bytes} bytes; nothing acknowledged is there if the disk kept its promises)` };
}

/** The verdict of a store check: its first damage, else its first torn write, else null. */
function storeVerdict(st: StoreState): ChainProblem | null {
  if (st.problems.length > 0) return storeProblem(st.problems[0]!);
  if (st.torn.length > 0) return tornProblem(st.torn[0]!);
  return null;
}

const COPY_ATTEMPTS = 5;

/** A file-system failure (ENOSPC, EIO, EROFS, EMFILE…) that kept a journal from being opened or read: not damage. */
function ioError(dir: string, err: unknown, doing: string): ThinjournalError {
  const errno = errnoOf(err) || 'EIO';
  return new ThinjournalError('ERR_JOURNAL_IO', `journal ${dir}: ${doing} failed: ${errno} (${(err as Error).message})`, { cause: err, dir, errno });
}

/**
 * A private copy of the LevelDB files of `dir` in a new temporary directory, for a reader. Nothing in `dir`
 * is written and its LOCK is not taken, so a writer working on `dir` meanwhile is not disturbed.
 *
 * CURRENT, the manifests and the logs are copied; then exactly the tables the copied manifest lists as live
 * are hard-linked (a copy where links cannot cross filesystems). Only those: LevelDB never rewrites a live
 * table, but a table file it is still writing, or one a crash left behind, has a number the copy's LevelDB
 * may allocate again — and it creates files with O_TRUNC, through the link, into the original. A writer may
 * compact meanwhile: the copy is taken again until the set of files and CURRENT were the same before and after
 * it (a log record being written is a torn final write in the copy; openReader settles those).
 */
function privateCopy(dir: string): { base: string; copy: string } {
  let lastErr: unknown = null;
  const regular = (n: string) => { try { return lstatSync(path.join(dir, n)).isFile(); } catch { return false; } };
  const list = () => readdirSync(dir).filter((n) => LEVELDB_FILE.test(n) && n !== 'LOCK' && n !== 'LOG' && n !== 'LOG.old' && regular(n)).sort();
  const readCurrent = () => { try { return readFileSync(path.join(dir, 'CURRENT')); } catch (err) { if (errnoOf(err) === 'ENOENT') return null; throw err; } };
  for (let attempt = 0; attempt < COPY_ATTEMPTS; attempt++) {
    let base: string | null = null;
    try {
      base = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-reader-'));
      const copy = path.join(base, 'journal');
      mkdirSync(copy, { mode: 0o700 });
      const current = readCurrent();
      const before = list();
      for (const name of before) {
        if (name === 'CURRENT' || /\.(ldb|sst)$/.test(name)) continue;
        copyFileSync(path.join(dir, name), path.join(copy, name));
      }
      if (current !== null) writeFileSync(path.join(copy, 'CURRENT'), current);
      // The live tables, as the copied manifest names them (a missing one is the check's to report).
      for (const name of checkStore(copy, { tables: 'footer' }).tables) {
        if (!before.includes(name)) continue;
        try { linkSync(path.join(dir, name), path.join(copy, name)); } catch (err) { if (errnoOf(err) === 'ENOENT') throw err; copyFileSync(path.join(dir, name), path.join(copy, name)); }
      }
      const after = list();
      const currentAfter = readCurrent();
      const same = before.length === after.length && before.every((n, i) => n === after[i])
        && (current === null ? currentAfter === null : currentAfter !== null && current.equals(currentAfter));
      if (!same) { rmSync(base, { recursive: true, force: true }); continue; }
      return { base, copy };
    } catch (err) {
      if (base !== null) rmSync(base, { recursive: true, force: true });
      if (errnoOf(err) === 'EACCES' || errnoOf(err) === 'EPERM') throw accessError(dir, err);
      if (errnoOf(err) !== 'ENOENT') throw ioError(dir, err, 'copying it for reading');
      lastErr = err;
    }
  }
  throw new ThinjournalError('ERR_JOURNAL_BUSY', `journal ${dir} kept changing while it was copied for reading (${COPY_ATTEMPTS} tries): a writer is busy with it; try again`, { cause: lastErr, dir });
}

/**
 * Directories open in this process. LevelDB's LOCK is a POSIX fcntl lock, and POSIX drops a process's lock when
 * the process closes *any* descriptor of that file — which LevelDB does when it refuses a second in-process
 * open. So a second in-process open must be refused here, before LevelDB is asked, or it would silently
 * release the first handle's lock and let another process in.
 */
const openDirs = new Set<string>();

export class Journal {
  private lastSeq = 0;
  private lastHash: Buffer = Buffer.from(GENESIS_PREV);
  private lastTs = 0;
  private meta: JournalMeta | null = null;
  private queue: Pending[] = [];
  private committing = false;
  private failure: unknown = null;
  private closed = false;
  private readonly live = new Subject<JournalRecord>();
  private readonly clock: () => number;
  private readonly actor: string;
  private readonly maxChunkRecords: number;
  private readonly maxChunkBytes: number;
  /** LevelDB writes (group commits) made by this handle. */
  commits = 0;
  /** Of those, the ones with `sync: true` (the protocol's sync budget: ≤ 1 per operation). */
  syncs = 0;
  /** What `repairTornTail` dropped at open, if anything (`file`: a torn write of LevelDB's log). */
  repaired: { readonly fromSeq: number; readonly droppedBytes: number; readonly file?: string } | null = null;

  private constructor(readonly dir: string, private readonly db: Store, readonly readOnly: boolean, opts: OpenOptions) {
    this.clock = opts.clock ?? Date.now;
    this.actor = opts.actor ?? 'thinjournal';
    this.maxChunkRecords = opts.maxChunkRecords ?? DEFAULT_MAX_CHUNK_RECORDS;
    this.maxChunkBytes = opts.maxChunkBytes ?? DEFAULT_MAX_CHUNK_BYTES;
  }

  /**
   * Opens the journal in `dir` for writing, exclusively: a second opener, in this or another process, gets
   * ERR_JOURNAL_LOCKED. Before LevelDB is allowed to open it, LevelDB's own files are checked (its log and
   * manifest record by record, its tables' sizes, footers and every block's checksum — about 1 ms per MiB):
   * damage is ERR_JOURNAL_CORRUPT naming the file and offset, and nothing is written. A torn final write of
   * LevelDB's log is ERR_JOURNAL_TORN unless `repairTornTail` (LevelDB then drops it; `repaired` says what). Then meta, the
   * key spaces and the chain from the latest valid checkpoint to the head are verified (O(tail)): damage is
   * ERR_JOURNAL_CORRUPT naming the seq, a torn last chunk ERR_JOURNAL_TORN unless `repairTornTail`.
   * `readOnly` opens a private copy instead (see openReader).
   */
  static async open(dir: string, opts: OpenOptions = {}): Promise<Journal> {
    if (typeof dir !== 'string' || dir === '') throw new TypeError('Journal.open: dir must be a non-empty string');
    if (opts.readOnly === true) return Journal.openReader(dir, opts);
    const lockKey = path.resolve(dir);
    if (openDirs.has(lockKey)) throw new ThinjournalError('ERR_JOURNAL_LOCKED', `journal ${dir} is already open in this process`, { dir });
    let store: StoreState = { problems: [], torn: [] };
    if (!opts.store) {
      const found = inspectDir(dir);
      if (found !== 'store' && opts.createIfMissing === false) {
        throw new ThinjournalError('ERR_NO_JOURNAL', `no journal at ${dir}${found === 'empty' ? ' (an empty directory)' : ''}`, { dir });
      }
      if (found === 'absent') mkdirSync(dir, { recursive: true, mode: 0o700 });
      if (found === 'store') {
        const sig = dirSignature(dir);
        store = checkStore(dir, { tables: 'full' });
        const bad = storeVerdict(store);
        if (bad) {
          // The check runs before LevelDB's lock is taken: files that change under it are another process's
          // writer at work (a commit in flight, a compaction), not damage.
          await new Promise((r) => setTimeout(r, 50));
          if (dirSignature(dir) !== sig) throw new ThinjournalError('ERR_JOURNAL_LOCKED', `journal ${dir} is being written by another process`, { dir });
          if (!(bad.kind === 'torn' && opts.repairTornTail === true)) throw chainError(bad);
        }
      }
    }
    openDirs.add(lockKey);
    const db = opts.store ?? new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
    try {
      await db.open({ createIfMissing: true, passive: false });
    } catch (err) {
      openDirs.delete(lockKey);
      throw levelOpenError(err, dir);
    }
    const j = new Journal(dir, db, false, opts);
    j.store = store;
    try {
      await j.load(opts.repairTornTail === true);
      // LevelDB dropped the torn write when it opened: the head is what survived.
      const t = store.torn[0];
      if (t && !j.repaired) j.repaired = { fromSeq: j.lastSeq + 1, droppedBytes: t.bytes, file: t.file };
    } catch (err) {
      await db.close().catch(() => {});
      openDirs.delete(lockKey);
      throw levelReadError(err, dir);
    }
    return j;
  }

  /**
   * Opens a journal for reading without writing a byte of it or taking its lock, so that an audit never
   * disturbs a writer (and a writer never blocks an audit): LevelDB opens a private copy (openReader's
   * privateCopy), whose files are checked first like a writer's. A missing journal is ERR_NO_JOURNAL, a path that is not one ERR_NOT_A_JOURNAL, a journal we
   * may not read ERR_JOURNAL_ACCESS; damage of LevelDB's files is ERR_JOURNAL_CORRUPT, a torn final write of
   * its log ERR_JOURNAL_TORN unless `allowTornTail` (then it is verify()'s first result). The copy is deleted on close. A commit in flight during the copy is
   * either in it or a torn final write of its log (dropped): the copy is a consistent prefix.
   */
  static async openReader(dir: string, opts: Omit<OpenOptions, 'readOnly' | 'store' | 'createIfMissing'> = {}): Promise<Journal> {
    if (typeof dir !== 'string' || dir === '') throw new TypeError('Journal.openReader: dir must be a non-empty string');
    const found = inspectDir(dir);
    if (found !== 'store') throw new ThinjournalError('ERR_NO_JOURNAL', `no journal at ${dir}${found === 'empty' ? ' (an empty directory)' : ''}`, { dir });
    let { base, copy } = privateCopy(dir);
    try {
      let store = checkStore(copy, { tables: 'full' });
      // A torn final write in the copy may be a writer's write in flight: copy again once the log has had
      // time to settle; a torn write that is still there is the journal's.
      for (let i = 0; i < 3 && store.torn.length > 0; i++) {
        await new Promise((r) => setTimeout(r, 20 * (i + 1)));
        rmSync(base, { recursive: true, force: true });
        ({ base, copy } = privateCopy(dir));
        store = checkStore(copy, { tables: 'full' });
      }
      const bad = storeVerdict(store);
      if (bad && !(bad.kind === 'torn' && opts.allowTornTail === true)) throw chainError(bad);
      const db = new ClassicLevel<string, Uint8Array>(copy, { keyEncoding: 'utf8', valueEncoding: 'view' });
      try {
        await db.open({ createIfMissing: false, passive: false });
      } catch (err) {
        throw levelOpenError(err, dir, copy);
      }
      const j = new Journal(dir, db, true, opts);
      j.copyDir = copy;
      j.store = store;
      j.cleanup = () => rmSync(base, { recursive: true, force: true });
      try {
        await j.load(false);
      } catch (err) {
        await db.close().catch(() => {});
        throw levelReadError(err, dir, copy);
      }
      return j;
    } catch (err) {
      rmSync(base, { recursive: true, force: true });
      throw err;
    }
  }

  private cleanup: (() => void) | null = null;
  /** A reader's private copy, whose path LevelDB's messages carry. */
  private copyDir: string | undefined;
  /** What the check of LevelDB's files found at open (a torn write only for a reader opened with allowTornTail). */
  store: StoreState = { problems: [], torn: [] };

  /** The verdict of that check — its first damage, else its torn final write — or null. */
  storeProblem(): ChainProblem | null {
    return storeVerdict(this.store);
  }

  /** The first key outside the v1 key spaces (format.md §2), or null. Five bounded seeks, not a scan. */
  private async foreignKey(): Promise<string | null> {
    const gaps: { gte?: string; gt?: string; lt?: string }[] = [
      { lt: CHECKPOINT_PREFIX }, { gte: CHECKPOINT_END, lt: HEAD_KEY }, { gt: HEAD_KEY, lt: META_KEY }, { gt: META_KEY, lt: CHUNK_PREFIX }, { gte: CHUNK_END },
    ];
    for (const range of gaps) {
      const it = this.db.keys({ ...range, limit: 1 });
      try {
        const k = await it.next();
        if (k !== undefined) return k;
      } finally {
        await it.close();
      }
    }
    return null;
  }

  private async load(repair: boolean): Promise<void> {
    const m = await this.db.get(META_KEY);
    const h = await this.db.get(HEAD_KEY);
    const last = await this.lastChunk();
    const foreign = await this.foreignKey();
    if (!m && !h && !last && foreign !== null) {
      throw new ThinjournalError('ERR_NOT_A_JOURNAL', `${this.dir} is a LevelDB database but not a journal (key ${JSON.stringify(foreign)})`, { dir: this.dir });
    }
    try {
      this.meta = m ? decodeMeta(m) : null;
    } catch (err) {
      if ((err as { code?: string }).code === 'ERR_UNKNOWN_VERSION') throw err;
      throw chainError({ kind: 'corrupt', seq: 0, reason: 'undecodable', key: META_KEY, message: `meta: ${(err as Error).message}` }, err);
    }
    let head: JournalHead | null;
    try {
      head = h ? decodeHead(h) : null;
    } catch (err) {
      throw chainError({ kind: 'corrupt', seq: 0, reason: 'undecodable', key: HEAD_KEY, message: `head: ${(err as Error).message}` }, err);
    }
    if (this.readOnly) {
      // Trust the head for reads; verify() (or checkTail()) is the check.
      if (head) { this.lastSeq = head.seq; this.lastHash = Buffer.from(head.hash, 'hex'); }
      return;
    }
    if (foreign !== null) throw chainError({ kind: 'corrupt', seq: 0, reason: 'foreign-key', key: foreign, message: `key ${JSON.stringify(foreign)} is outside the journal's key spaces (format.md §2)` });
    if (!this.meta && (head || last)) {
      // Never re-created: a new journal id would pass off a damaged journal as another one.
      throw chainError({ kind: 'corrupt', seq: 0, reason: 'no-meta', key: META_KEY, message: 'the meta key "m" is missing but the journal holds records' });
    }
    if (!last) {
      if (head && head.seq > 0) throw chainError({ kind: 'corrupt', seq: 1, reason: 'truncated', message: `the head says seq ${head.seq} but there are no records` });
      // Meta is written with the first commit, never alone: meta without records is a journal whose records went.
      if (this.meta) throw chainError({ kind: 'corrupt', seq: 1, reason: 'truncated', message: 'meta exists but there are no records and no head (meta is written with the first commit)' });
      return;
    }
    if (head) this.lastSeq = head.seq;
    const walk = await this.walkTail(head);
    const r = walk.result;
    if (!r.ok) {
      if (r.kind === 'torn' && repair && walk.torn) {
        await this.repairTorn(walk.torn.key, walk.torn.value, walk.torn.tornAt, walk.lastRec, walk.torn.first);
        return;
      }
      throw chainError(r);
    }
    const rec = walk.lastRec;
    if (rec) { this.lastSeq = rec.seq; this.lastHash = Buffer.from(rec.hash, 'hex'); this.lastTs = rec.ts; }
  }

  /**
   * What a writer's open verifies, for a reader: the key spaces and meta, then the chain from the latest valid
   * checkpoint (bound to the chain by its record's hash) to the head — O(records since the checkpoint).
   * Resolves with the result; never throws for damage.
   */
  async checkTail(): Promise<ChainResult> {
    const foreign = await this.foreignKey();
    if (foreign !== null) return { ok: false, records: 0, kind: 'corrupt', seq: 0, reason: 'foreign-key', key: foreign, message: `key ${JSON.stringify(foreign)} is outside the journal's key spaces (format.md §2)` };
    const hasMeta = (await this.db.get(META_KEY)) !== undefined;
    const hasRecords = (await this.db.get(HEAD_KEY)) !== undefined || (await this.lastChunk()) !== null;
    if (!hasMeta && hasRecords) {
      return { ok: false, records: 0, kind: 'corrupt', seq: 0, reason: 'no-meta', key: META_KEY, message: 'the meta key "m" is missing but the journal holds records' };
    }
    if (hasMeta && !hasRecords) {
      return { ok: false, records: 0, kind: 'corrupt', seq: 1, reason: 'truncated', message: 'meta exists but there are no records and no head (meta is written with the first commit)' };
    }
    const h = await this.db.get(HEAD_KEY);
    let head: JournalHead | null;
    try {
      head = h ? decodeHead(h) : null;
    } catch (err) {
      return { ok: false, records: 0, kind: 'corrupt', seq: 0, reason: 'undecodable', key: HEAD_KEY, message: `head: ${(err as Error).message}` };
    }
    return (await this.walkTail(head)).result;
  }

  private async walkTail(head: JournalHead | null): Promise<{
    result: ChainResult; lastRec: JournalRecord | null; torn: { key: string; value: Uint8Array; tornAt: number; first: number } | null;
  }> {
    const cp = await this.latestCheckpoint();
    let startKey: string = CHUNK_PREFIX;
    let start: JournalHead | undefined;
    let anchor: JournalHead | undefined;
    if (cp) {
      startKey = (await this.chunkKeyFor(cp.seq)) ?? CHUNK_PREFIX;
      const first = seqOfKey(startKey, CHUNK_PREFIX);
      const value = await this.db.get(startKey);
      const raw = (() => { try { return value ? splitChunk(value).entries[0]?.raw as { prev?: Uint8Array } | undefined : undefined; } catch { return undefined; } })();
      if (first === null || !(raw?.prev instanceof Uint8Array)) {
        return { result: { ok: false, records: 0, kind: 'corrupt', seq: first ?? cp.seq, reason: 'undecodable', message: `chunk ${startKey} (holding checkpointed record ${cp.seq}) is not readable` }, lastRec: null, torn: null };
      }
      start = { seq: first - 1, hash: Buffer.from(raw.prev).toString('hex') };
      anchor = { seq: cp.seq, hash: cp.recordHash };
    }
    let lastRec: JournalRecord | null = null;
    const v = new ChainVerifier((r) => { lastRec = r; }, start, anchor);
    let pending: [string, Uint8Array] | null = null;
    let problem = false;
    const it = this.db.iterator({ gte: startKey, lt: CHUNK_END });
    try {
      for (;;) {
        const batch = await it.nextv(READ_BATCH);
        if (batch.length === 0) break;
        for (const e of batch) {
          if (pending && v.chunk(pending[0], pending[1], false)) { problem = true; break; }
          pending = e;
        }
        if (problem) break;
      }
    } finally {
      await it.close();
    }
    let torn = null;
    if (pending && !problem) {
      const p = v.chunk(pending[0], pending[1], true);
      if (p?.kind === 'torn') {
        const split = (() => { try { return splitChunk(pending[1]); } catch { return null; } })();
        torn = { key: pending[0], value: pending[1], tornAt: split?.tornAt ?? 0, first: seqOfKey(pending[0], CHUNK_PREFIX) ?? 0 };
      }
    }
    return { result: v.finish(head), lastRec, torn };
  }

  private async repairTorn(key: string, value: Uint8Array, tornAt: number, lastGood: JournalRecord | null, first: number): Promise<void> {
    const ops: { type: 'put' | 'del'; key: string; value?: Uint8Array }[] = [];
    if (tornAt === 0) ops.push({ type: 'del', key });
    else ops.push({ type: 'put', key, value: value.subarray(0, tornAt) });
    let head: JournalHead;
    if (lastGood) head = { seq: lastGood.seq, hash: lastGood.hash };
    else if (first > 1) {
      // The whole chunk is dropped; the head moves to the last record of the chunk before it.
      const prev = await this.lastChunk(chunkKey(first));
      const recs = prev ? splitChunk(prev.value).entries : [];
      const e = recs[recs.length - 1];
      if (!prev || !e) throw chainError({ kind: 'corrupt', seq: first - 1, reason: 'gap', message: 'no chunk before the torn one' });
      const rec = recordFromDecoded(e.raw, prev.value.subarray(e.start, e.end));
      head = { seq: rec.seq, hash: rec.hash };
    } else head = { seq: 0, hash: Buffer.from(GENESIS_PREV).toString('hex') };
    // Nothing survives: the journal is empty again, and meta (written with the first commit) goes with it.
    if (head.seq === 0) ops.push({ type: 'del', key: HEAD_KEY }, { type: 'del', key: META_KEY });
    else ops.push({ type: 'put', key: HEAD_KEY, value: encodeHead(head) });
    await this.db.batch(ops as never, { sync: true });
    if (head.seq === 0) this.meta = null;
    this.repaired = { fromSeq: head.seq + 1, droppedBytes: value.length - tornAt };
    this.lastSeq = head.seq;
    this.lastHash = Buffer.from(head.hash, 'hex');
    if (lastGood) this.lastTs = lastGood.ts;
  }

  /** The chunk with the greatest key (below `before`, if given). */
  private async lastChunk(before?: string): Promise<{ key: string; value: Uint8Array } | null> {
    const it = this.db.iterator({ gte: CHUNK_PREFIX, lt: before ?? CHUNK_END, reverse: true, limit: 1 });
    try {
      const e = await it.next();
      return e ? { key: e[0], value: e[1] } : null;
    } finally {
      await it.close();
    }
  }

  get journalId(): string | null { return this.meta?.journalId ?? null; }

  /** The last durable record: seq 0 and the genesis hash for an empty journal. */
  head(): JournalHead {
    return { seq: this.lastSeq, hash: this.lastHash.toString('hex') };
  }

  /**
   * Appends events; resolves with their records once they are durable. Each event is validated first: one bad
   * event rejects the whole call with ERR_BAD_EVENT and nothing of it is written. Seqs follow call order.
   */
  append(events: readonly JournalEvent[], opts: AppendOptions = {}): Promise<JournalRecord[]> {
    if (!Array.isArray(events)) return Promise.reject(new TypeError('Journal.append: events must be an array'));
    if (this.closed) return Promise.reject(new ThinjournalError('ERR_JOURNAL_CLOSED', 'journal is closed'));
    if (this.readOnly) return Promise.reject(new ThinjournalError('ERR_JOURNAL_READONLY', 'journal was opened read-only'));
    if (this.failure) return Promise.reject(this.readOnlyError());
    try {
      for (const e of events) {
        if (typeof e !== 'object' || e === null) throw new ThinjournalError('ERR_BAD_EVENT', 'an event must be an object');
        validateEvent(e.type, e.txId, e.body, e.actor ?? this.actor, e.reason ?? '');
        if (packr.pack(e.body).length > MAX_BODY_BYTES) throw new ThinjournalError('ERR_BAD_EVENT', `${e.type}: body larger than ${MAX_BODY_BYTES} bytes`, { type: e.type });
      }
    } catch (err) {
      return Promise.reject(err);
    }
    if (events.length === 0) return Promise.resolve([]);
    return new Promise((resolve, reject) => {
      this.queue.push({ events, sync: opts.sync !== false, resolve, reject });
      this.kick();
    });
  }

  private readOnlyError(): ThinjournalError {
    return new ThinjournalError('ERR_JOURNAL_READONLY', `journal is read-only after a failed durable write: ${(this.failure as Error)?.message ?? this.failure}`, { cause: this.failure });
  }

  /** Starts a commit of everything queued, unless one is in flight (it will start the next when done). */
  private kick(): void {
    if (this.committing || this.queue.length === 0) return;
    this.committing = true;
    const batch = this.queue;
    this.queue = [];
    void this.commit(batch).finally(() => {
      this.committing = false;
      if (this.failure) this.rejectQueued();
      else this.kick();
    });
  }

  private rejectQueued(): void {
    const q = this.queue;
    this.queue = [];
    for (const p of q) p.reject(this.readOnlyError());
  }

  private async commit(batch: Pending[]): Promise<void> {
    let seq = this.lastSeq;
    let prev = this.lastHash;
    const ts = Math.max(this.clock(), this.lastTs);
    const accepted: { p: Pending; records: JournalRecord[] }[] = [];
    const chunks: { key: string; parts: Buffer[]; bytes: number }[] = [];
    for (const p of batch) {
      const records: JournalRecord[] = [];
      const encoded: Buffer[] = [];
      let s = seq;
      let h = prev;
      try {
        for (const e of p.events) {
          s++;
          const actor = e.actor ?? this.actor;
          const reason = e.reason ?? '';
          const bytes = encodeRecord({ seq: s, txId: e.txId, ts, type: e.type, actor, reason, body: e.body, prev: h });
          const hash = sha256(bytes);
          records.push({ v: FORMAT_VERSION, seq: s, txId: e.txId, ts, type: e.type as EventType, actor, reason, body: e.body as Record<string, unknown>, prev: h.toString('hex'), hash: hash.toString('hex') });
          encoded.push(bytes);
          h = hash;
        }
      } catch (err) {
        p.reject(err); // validated at append(); only a bug gets here. Nothing of this append is written.
        continue;
      }
      seq = s;
      prev = h;
      for (let i = 0; i < encoded.length; i++) {
        const bytes = encoded[i]!;
        let c = chunks[chunks.length - 1];
        if (!c || c.parts.length >= this.maxChunkRecords || c.bytes + bytes.length > this.maxChunkBytes) {
          c = { key: chunkKey(seq - encoded.length + 1 + i), parts: [], bytes: 0 };
          chunks.push(c);
        }
        c.parts.push(bytes);
        c.bytes += bytes.length;
      }
      accepted.push({ p, records });
    }
    if (accepted.length === 0) return;
    const ops: { type: 'put'; key: string; value: Uint8Array }[] = chunks.map((c) => ({ type: 'put', key: c.key, value: Buffer.concat(c.parts, c.bytes) }));
    ops.push({ type: 'put', key: HEAD_KEY, value: encodeHead({ seq, hash: prev.toString('hex') }) });
    let meta = this.meta;
    if (!meta) {
      meta = { format: FORMAT_VERSION, journalId: randomBytes(16).toString('hex'), createdAt: ts };
      ops.push({ type: 'put', key: META_KEY, value: encodeMeta(meta) });
    }
    // One write for the whole group; synced if any member asked for durability (a sync write also makes
    // every earlier unsynced write durable: LevelDB's log is one file, fsynced up to its end).
    const sync = accepted.some((a) => a.p.sync);
    try {
      await this.db.batch(ops, { sync });
    } catch (err) {
      // Fail-stop: what reached the disk is unknown; nothing here is acknowledged, nothing later is accepted.
      this.failure = err;
      const e = this.readOnlyError();
      for (const a of accepted) a.p.reject(e);
      this.live.error(e);
      return;
    }
    this.commits++;
    if (sync) this.syncs++;
    this.meta = meta;
    this.lastSeq = seq;
    this.lastHash = prev;
    this.lastTs = ts;
    for (const a of accepted) {
      a.p.resolve(a.records);
      for (const r of a.records) this.live.next(r);
    }
  }

  /** Key of the chunk holding `seq` (greatest chunk key ≤ chunkKey(seq)), or null. */
  private async chunkKeyFor(seq: number): Promise<string | null> {
    const it = this.db.keys({ gte: CHUNK_PREFIX, lte: chunkKey(seq), reverse: true, limit: 1 });
    try {
      return (await it.next()) ?? null;
    } finally {
      await it.close();
    }
  }

  /** Batches of chunks, in key order, starting with the one that holds `fromSeq` (one consistent snapshot). */
  private async *chunks(fromSeq: number): AsyncGenerator<[string, Uint8Array][]> {
    const start = fromSeq <= 1 ? CHUNK_PREFIX : (await this.chunkKeyFor(fromSeq)) ?? CHUNK_PREFIX;
    const it = this.db.iterator({ gte: start, lt: CHUNK_END });
    try {
      for (;;) {
        let entries;
        try {
          entries = await it.nextv(READ_BATCH);
        } catch (err) {
          throw levelReadError(err, this.dir, this.copyDir);
        }
        if (entries.length === 0) return;
        yield entries;
      }
    } finally {
      await it.close();
    }
  }

  /** Decodes the records of one chunk with seq ≥ fromSeq. No chain check: that is verify(). */
  private static decodeChunk(key: string, value: Uint8Array, fromSeq: number, hash: boolean, out: JournalRecord[]): void {
    const first = seqOfKey(key, CHUNK_PREFIX) ?? 0;
    let split;
    try {
      split = splitChunk(value);
    } catch (err) {
      throw chainError({ kind: 'corrupt', seq: first, reason: 'undecodable', message: `chunk ${key}: ${(err as Error).message}` }, err);
    }
    if (split.tornAt !== null) throw chainError({ kind: 'torn', seq: first, reason: 'torn-tail', message: `chunk ${key} ends inside a record` });
    for (const [i, e] of split.entries.entries()) {
      let rec;
      try {
        rec = recordFromDecoded(e.raw, value.subarray(e.start, e.end), { hash });
      } catch (err) {
        const code = err instanceof ThinjournalError ? err.code : '';
        if (code === 'ERR_UNKNOWN_VERSION') throw err; // a newer writer's record (format.md §9), not damage
        const reason = code === 'ERR_BAD_EVENT' ? 'bad-event' : 'undecodable';
        throw chainError({ kind: 'corrupt', seq: first + i, reason, message: `chunk ${key}, record ${i + 1}: ${(err as Error).message}` }, err);
      }
      if (rec.seq >= fromSeq) out.push(rec);
    }
  }

  /** Records in a range, in seq order, from one consistent snapshot. */
  async *iterate(range: ReadRange = {}): AsyncGenerator<JournalRecord> {
    const { fromSeq = 1, toSeq = Infinity, since = -Infinity, until = Infinity, limit = Infinity } = range;
    let count = 0;
    for await (const batch of this.chunks(fromSeq)) {
      const recs: JournalRecord[] = [];
      for (const [key, value] of batch) Journal.decodeChunk(key, value, fromSeq, true, recs);
      for (const rec of recs) {
        // ts is non-decreasing along the chain (format.md §11), so `until` ends the range.
        if (rec.seq > toSeq || rec.ts > until || count >= limit) return;
        if (rec.ts < since) continue;
        count++;
        yield rec;
      }
    }
  }

  /** All records of a range, as an array. */
  async read(range: ReadRange = {}): Promise<JournalRecord[]> {
    const out: JournalRecord[] = [];
    for await (const r of this.iterate(range)) out.push(r);
    return out;
  }

  /**
   * Fast replay: calls `fn` for every record from `fromSeq`, in order, chunk by chunk. Every record is checked
   * (envelope and body) but not hashed, and `fn` gets the decoded envelope itself (no copy, no prev/hash
   * strings): the chain is verify()'s job. Resolves with the number of records passed to `fn`.
   */
  async forEach(fn: (rec: ReplayRecord) => void, opts: { fromSeq?: number; toSeq?: number } = {}): Promise<number> {
    const fromSeq = opts.fromSeq ?? 1;
    const toSeq = opts.toSeq ?? Infinity;
    let n = 0;
    let done = false;
    for await (const batch of this.chunks(fromSeq)) {
      for (const [key, value] of batch) {
        try {
          packr.unpackMultiple(value as Buffer, (raw: unknown) => {
            const r = checkEnvelope(raw);
            if (r.seq > toSeq) { done = true; return false; }
            if (r.seq >= fromSeq) { fn(r); n++; }
            return true;
          });
        } catch (err) {
          if ((err as { incomplete?: boolean }).incomplete) throw chainError({ kind: 'torn', seq: seqOfKey(key, CHUNK_PREFIX) ?? 0, reason: 'torn-tail', message: `chunk ${key} ends inside a record` });
          if (err instanceof ThinjournalError && (err.code === 'ERR_JOURNAL_CORRUPT' || err.code === 'ERR_JOURNAL_TORN')) throw err;
          // Bytes that do not decode, or an envelope that breaks the format: corruption of this chunk.
          const code = err instanceof ThinjournalError ? err.code : '';
          if (code === 'ERR_UNKNOWN_VERSION') throw err; // a newer writer's record (format.md §9), not damage
          const reason = code === 'ERR_BAD_EVENT' ? 'bad-event' : 'undecodable';
          throw chainError({ kind: 'corrupt', seq: seqOfKey(key, CHUNK_PREFIX) ?? 0, reason, message: `chunk ${key}: ${(err as Error).message}` }, err);
        }
        if (done) return n;
      }
    }
    return n;
  }

  /** The first key outside the v1 key spaces, in a full scan (verify: also malformed "c"/"r" keys). */
  private async scanKeys(): Promise<string | null> {
    for await (const k of this.db.keys()) {
      if (k === META_KEY || k === HEAD_KEY) continue;
      if (seqOfKey(k, CHUNK_PREFIX) !== null || seqOfKey(k, CHECKPOINT_PREFIX) !== null) continue;
      return k;
    }
    return null;
  }

  /**
   * Checks everything, in order, and reports the first problem (file or key or seq, and a reason): LevelDB's
   * own files (as found at open), the key spaces and meta, then the whole chain (records, hashes, seqs, ts)
   * against the head; every checkpoint is checked and listed. Never throws for damage.
   */
  async verify(opts: VerifyOptions = {}): Promise<VerifyReport> {
    const h = await this.db.get(HEAD_KEY);
    let head: JournalHead | null = null;
    let headProblem: ChainResult | null = null;
    try { head = h ? decodeHead(h) : null; } catch (err) {
      headProblem = { ok: false, records: 0, kind: 'corrupt', seq: 0, reason: 'undecodable', key: HEAD_KEY, message: `head: ${(err as Error).message}` };
    }
    const storeBad = storeVerdict(this.store);
    if (!headProblem && storeBad) headProblem = { ok: false, records: 0, ...storeBad };
    if (!headProblem) {
      const k = await this.scanKeys();
      if (k !== null) headProblem = { ok: false, records: 0, kind: 'corrupt', seq: 0, reason: 'foreign-key', key: k, message: `key ${JSON.stringify(k)} is outside the journal's key spaces (format.md §2)` };
    }
    if (!headProblem) {
      const hasMeta = (await this.db.get(META_KEY)) !== undefined;
      const hasRecords = head !== null || (await this.lastChunk()) !== null;
      if (!hasMeta && hasRecords) headProblem = { ok: false, records: 0, kind: 'corrupt', seq: 0, reason: 'no-meta', key: META_KEY, message: 'the meta key "m" is missing but the journal holds records' };
      if (hasMeta && !hasRecords) headProblem = { ok: false, records: 0, kind: 'corrupt', seq: 1, reason: 'truncated', message: 'meta exists but there are no records and no head (meta is written with the first commit)' };
    }
    const total = head?.seq ?? 0;
    let lastReport = 0;
    const v = new ChainVerifier((r) => {
      opts.onRecord?.(r);
      if (opts.onProgress && r.seq - lastReport >= 10_000) { lastReport = r.seq; opts.onProgress(r.seq, total); }
    });
    // A chunk is checked once the next one is seen, so that the verifier knows which one is last (torn tail).
    let pending: [string, Uint8Array] | null = null;
    let problem = false;
    for await (const batch of this.chunks(1)) {
      for (const e of batch) {
        if (pending && v.chunk(pending[0], pending[1], false)) { problem = true; break; }
        pending = e;
      }
      if (problem) break;
    }
    if (pending && !problem) v.chunk(pending[0], pending[1], true);
    const chain = v.finish(head);
    const result = headProblem ? { ...headProblem, records: chain.records } : chain;
    opts.onProgress?.(result.records, total);
    const checkpoints = await this.checkCheckpoints();
    return { result, checkpoints, store: this.store };
  }

  private async recordAt(seq: number): Promise<JournalRecord | null> {
    try {
      for await (const rec of this.iterate({ fromSeq: seq, limit: 1 })) return rec.seq === seq ? rec : null;
    } catch {
      return null;
    }
    return null;
  }

  private async checkCheckpoints(): Promise<VerifyReport['checkpoints']> {
    const valid: number[] = [];
    const invalid: { seq: number; message: string }[] = [];
    for await (const [key, value] of this.db.iterator({ gte: CHECKPOINT_PREFIX, lt: CHECKPOINT_END })) {
      const seq = seqOfKey(key, CHECKPOINT_PREFIX) ?? -1;
      const problem = await this.checkpointProblem(seq, value);
      if (problem) invalid.push({ seq, message: problem.message });
      else valid.push(seq);
    }
    return { valid, invalid };
  }

  private async checkpointProblem(seq: number, value: Uint8Array): Promise<ThinjournalError | null> {
    try {
      const c = decodeCheckpoint(value);
      if (c.seq !== seq) return new ThinjournalError('ERR_CHECKPOINT_INVALID', `checkpoint key says seq ${seq}, value says ${c.seq}`);
      const rec = await this.recordAt(seq);
      if (!rec) return new ThinjournalError('ERR_CHECKPOINT_INVALID', `checkpoint at seq ${seq}: no such record`);
      if (rec.hash !== c.recordHash) return new ThinjournalError('ERR_CHECKPOINT_INVALID', `checkpoint at seq ${seq}: record hash differs (not this chain)`);
      return null;
    } catch (err) {
      return err instanceof ThinjournalError ? err : new ThinjournalError('ERR_CHECKPOINT_INVALID', String(err), { cause: err });
    }
  }

  /**
   * Stores a checkpoint: `state` (msgpack-encodable plain data) is the result of applying records 1..seq, and
   * `stateHash` its canonical hash (packages/model). Durable (sync) before it resolves.
   */
  async putCheckpoint(seq: number, state: unknown, stateHash: string): Promise<void> {
    if (!Number.isSafeInteger(seq) || seq < 1) throw new TypeError('putCheckpoint: seq must be an integer ≥ 1');
    if (typeof stateHash !== 'string') throw new TypeError('putCheckpoint: stateHash must be a string');
    if (this.closed) throw new ThinjournalError('ERR_JOURNAL_CLOSED', 'journal is closed');
    if (this.readOnly || this.failure) throw this.failure ? this.readOnlyError() : new ThinjournalError('ERR_JOURNAL_READONLY', 'journal was opened read-only');
    if (seq > this.lastSeq) throw new ThinjournalError('ERR_CHECKPOINT_INVALID', `checkpoint seq ${seq} is beyond the head (${this.lastSeq})`);
    const rec = await this.recordAt(seq);
    if (!rec) throw new ThinjournalError('ERR_CHECKPOINT_INVALID', `no record at seq ${seq}`);
    await this.db.put(checkpointKey(seq), encodeCheckpoint({ seq, recordHash: rec.hash, stateHash, state }), { sync: true });
  }

  /** The checkpoint stored at `seq` if it is valid (format.md §7), else null. */
  async checkpointAt<S = unknown>(seq: number): Promise<Checkpoint<S> | null> {
    const value = await this.db.get(checkpointKey(seq));
    if (!value || (await this.checkpointProblem(seq, value))) return null;
    const c = decodeCheckpoint(value);
    return { seq: c.seq, recordHash: c.recordHash, stateHash: c.stateHash, state: c.state as S };
  }

  /**
   * The latest valid checkpoint (format.md §7), or null. Invalid ones on the way down are skipped and listed
   * in `skipped`. The caller must still compare its recomputed state hash with `stateHash`.
   */
  async latestCheckpoint<S = unknown>(): Promise<(Checkpoint<S> & { skipped: { seq: number; message: string }[] }) | null> {
    const skipped: { seq: number; message: string }[] = [];
    for await (const [key, value] of this.db.iterator({ gte: CHECKPOINT_PREFIX, lt: CHECKPOINT_END, reverse: true })) {
      const seq = seqOfKey(key, CHECKPOINT_PREFIX) ?? -1;
      const problem = seq > this.lastSeq
        ? new ThinjournalError('ERR_CHECKPOINT_INVALID', `checkpoint at seq ${seq} is beyond the head`)
        : await this.checkpointProblem(seq, value);
      if (problem) { skipped.push({ seq, message: problem.message }); continue; }
      const c = decodeCheckpoint(value);
      return { seq: c.seq, recordHash: c.recordHash, stateHash: c.stateHash, state: c.state as S, skipped };
    }
    return null;
  }

  /**
   * Live records as an Observable: replays from `fromSeq`, then follows appends as they become durable; never a
   * gap or a duplicate; completes when the journal closes; errors if the journal fail-stops.
   */
  tail(fromSeq = 1): Observable<JournalRecord> {
    return new Observable<JournalRecord>((sub) => {
      let next = Math.max(1, fromSeq);
      let replaying = true;
      const held: JournalRecord[] = [];
      const emit = (r: JournalRecord) => { if (r.seq === next) { next++; sub.next(r); } };
      // Subscribe to live first, then snapshot: every record is either in the snapshot or in `held`.
      const live = this.live.subscribe({
        next: (r) => { if (replaying) held.push(r); else emit(r); },
        error: (e) => sub.error(e),
        complete: () => { if (!replaying) sub.complete(); },
      });
      (async () => {
        for await (const r of this.iterate({ fromSeq: next })) {
          if (sub.closed) return;
          emit(r);
        }
        replaying = false;
        for (const r of held) emit(r);
        held.length = 0;
        if (this.closed) sub.complete();
      })().catch((e) => { if (this.closed) sub.complete(); else sub.error(e); });
      return () => live.unsubscribe();
    });
  }

  /** Waits for the commit in flight (queued appends are committed first), then closes the store. */
  async close(): Promise<void> {
    if (this.closed) return;
    while (this.committing || this.queue.length) await new Promise((r) => setTimeout(r, 1));
    this.closed = true;
    this.live.complete();
    try {
      await this.db.close();
    } finally {
      openDirs.delete(path.resolve(this.dir));
      this.cleanup?.();
    }
  }
}
