/**
 * The write-ahead journal (journal-spec/format.md). One writer per directory; appends are validated
 * synchronously, group-committed (everything queued while a commit is in flight goes into the next single
 * `sync: true` LevelDB batch), and acknowledged only after that batch is durable. A failed commit is
 * fail-stop: the handle turns read-only and never reports success for data it could not make durable.
 */
import { mkdirSync, mkdtempSync, readdirSync, linkSync, copyFileSync, rmSync } from 'node:fs';
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
  type EventType,
} from '@thinjournal/spec';

/** The LevelDB-shaped store the journal needs (classic-level, or any abstract-level database with these). */
export type Store = ClassicLevel<string, Uint8Array>;

export interface OpenOptions {
  /** Default `actor` for appended events that name none. */
  readonly actor?: string;
  /** Open for reading only: no tail check, appends refused. Used by verify/dump of a damaged journal. */
  readonly readOnly?: boolean;
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
  readonly result: ChainResult;
  readonly checkpoints: { readonly valid: number[]; readonly invalid: { seq: number; message: string }[] };
}

export interface Checkpoint<S = unknown> {
  readonly seq: number;
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

function levelOpenError(err: unknown, dir: string): ThinjournalError {
  const cause = (err as { cause?: { code?: string } }).cause;
  if (cause?.code === 'LEVEL_LOCKED' || (err as { code?: string }).code === 'LEVEL_LOCKED') {
    return new ThinjournalError('ERR_JOURNAL_LOCKED', `journal ${dir} is locked by another process or handle`, { cause: err, dir });
  }
  return new ThinjournalError('ERR_JOURNAL_CORRUPT', `journal ${dir} could not be opened: ${(err as Error).message}`, { cause: err, dir, reason: 'open' });
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
  /** What `repairTornTail` dropped at open, if anything. */
  repaired: { readonly fromSeq: number; readonly droppedBytes: number } | null = null;

  private constructor(readonly dir: string, private readonly db: Store, readonly readOnly: boolean, opts: OpenOptions) {
    this.clock = opts.clock ?? Date.now;
    this.actor = opts.actor ?? 'thinjournal';
    this.maxChunkRecords = opts.maxChunkRecords ?? DEFAULT_MAX_CHUNK_RECORDS;
    this.maxChunkBytes = opts.maxChunkBytes ?? DEFAULT_MAX_CHUNK_BYTES;
  }

  /**
   * Opens (creating if needed) the journal in `dir`, exclusively: a second opener, in this or another process,
   * gets ERR_JOURNAL_LOCKED. Checks meta (ERR_UNKNOWN_VERSION), head and the last chunk (ERR_JOURNAL_CORRUPT,
   * ERR_JOURNAL_TORN) — not the whole chain: that is `verify()`.
   */
  static async open(dir: string, opts: OpenOptions = {}): Promise<Journal> {
    if (typeof dir !== 'string' || dir === '') throw new TypeError('Journal.open: dir must be a non-empty string');
    const readOnly = opts.readOnly === true;
    if (!readOnly) mkdirSync(dir, { recursive: true, mode: 0o700 });
    const lockKey = path.resolve(dir);
    if (openDirs.has(lockKey)) throw new ThinjournalError('ERR_JOURNAL_LOCKED', `journal ${dir} is already open in this process`, { dir });
    openDirs.add(lockKey);
    const db = opts.store ?? new ClassicLevel<string, Uint8Array>(dir, { keyEncoding: 'utf8', valueEncoding: 'view' });
    try {
      await db.open({ createIfMissing: !readOnly, passive: false });
    } catch (err) {
      openDirs.delete(lockKey);
      throw levelOpenError(err, dir);
    }
    const j = new Journal(dir, db, readOnly, opts);
    try {
      await j.load(opts.repairTornTail === true);
    } catch (err) {
      await db.close().catch(() => {});
      openDirs.delete(lockKey);
      throw err;
    }
    return j;
  }

  /**
   * Opens a read-only copy of a journal that another process holds (LevelDB admits one process at a time):
   * table files are hard-linked (LevelDB never rewrites them), the log and manifest are copied, and the copy
   * is opened read-only. A commit in flight during the copy is either in it or not (LevelDB's recovery drops
   * a partial log record), so the copy is a consistent prefix. The copy is deleted on close.
   */
  static async openSnapshot(dir: string, opts: Omit<OpenOptions, 'readOnly' | 'store'> = {}): Promise<Journal> {
    const base = mkdtempSync(path.join(os.tmpdir(), 'thinjournal-snapshot-'));
    const copy = path.join(base, 'journal');
    mkdirSync(copy, { mode: 0o700 });
    try {
      for (const name of readdirSync(dir)) {
        if (name === 'LOCK' || name === 'LOG' || name === 'LOG.old') continue;
        const from = path.join(dir, name);
        const to = path.join(copy, name);
        if (/\.(ldb|sst)$/.test(name)) {
          try { linkSync(from, to); } catch { copyFileSync(from, to); }
        } else copyFileSync(from, to);
      }
      const j = await Journal.open(copy, { ...opts, readOnly: true });
      j.cleanup = () => rmSync(base, { recursive: true, force: true });
      return j;
    } catch (err) {
      rmSync(base, { recursive: true, force: true });
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new ThinjournalError('ERR_JOURNAL_CORRUPT', `journal ${dir} changed while it was copied; try again`, { cause: err, reason: 'open' });
      }
      throw err;
    }
  }

  private cleanup: (() => void) | null = null;

  private async load(repair: boolean): Promise<void> {
    const m = await this.db.get(META_KEY);
    this.meta = m ? decodeMeta(m) : null;
    const h = await this.db.get(HEAD_KEY);
    const head = h ? decodeHead(h) : null;
    const last = await this.lastChunk();
    if (this.readOnly) {
      // Trust the head for reads; verify() is the check.
      if (head) { this.lastSeq = head.seq; this.lastHash = Buffer.from(head.hash, 'hex'); }
      return;
    }
    if (!last) {
      if (head && head.seq > 0) throw chainError({ kind: 'corrupt', seq: 1, reason: 'truncated', message: `the head says seq ${head.seq} but there are no records` });
      return;
    }
    const first = seqOfKey(last.key, CHUNK_PREFIX);
    const split = (() => { try { return splitChunk(last.value); } catch { return null; } })();
    if (first !== null && split && split.entries.length === 0 && split.tornAt !== null) {
      // The last chunk holds nothing but an unfinished record.
      if (repair) return this.repairTorn(last.key, last.value, 0, null, first);
      throw chainError({ kind: 'torn', seq: first, reason: 'torn-tail', message: `the last chunk (${last.key}) ends inside record ${first}` });
    }
    const firstRaw = split?.entries[0]?.raw as { prev?: Uint8Array } | undefined;
    if (first === null || !split || !(firstRaw?.prev instanceof Uint8Array)) {
      throw chainError({ kind: 'corrupt', seq: first ?? 0, reason: 'undecodable', message: `last chunk ${last.key} is not readable` });
    }
    // Check the last chunk against the head, trusting its first record's `prev` (verify() checks the rest).
    let lastRec: JournalRecord | null = null;
    const v = new ChainVerifier((r) => { lastRec = r; }, { seq: first - 1, hash: Buffer.from(firstRaw.prev).toString('hex') });
    const problem = v.chunk(last.key, last.value, true);
    if (problem?.kind === 'torn' && repair) {
      await this.repairTorn(last.key, last.value, split.tornAt ?? 0, lastRec, first);
      return;
    }
    const r = v.finish(head);
    if (!r.ok) throw chainError(r);
    const rec = lastRec as JournalRecord | null;
    if (rec) { this.lastSeq = rec.seq; this.lastHash = Buffer.from(rec.hash, 'hex'); this.lastTs = rec.ts; }
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
    if (head.seq === 0) ops.push({ type: 'del', key: HEAD_KEY });
    else ops.push({ type: 'put', key: HEAD_KEY, value: encodeHead(head) });
    await this.db.batch(ops as never, { sync: true });
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
        const entries = await it.nextv(READ_BATCH);
        if (entries.length === 0) return;
        yield entries;
      }
    } finally {
      await it.close();
    }
  }

  /** Decodes the records of one chunk with seq ≥ fromSeq. No chain check: that is verify(). */
  private static decodeChunk(key: string, value: Uint8Array, fromSeq: number, hash: boolean, out: JournalRecord[]): void {
    const { entries, tornAt } = splitChunk(value);
    if (tornAt !== null) throw chainError({ kind: 'torn', seq: seqOfKey(key, CHUNK_PREFIX) ?? 0, reason: 'torn-tail', message: `chunk ${key} ends inside a record` });
    for (const e of entries) {
      const rec = recordFromDecoded(e.raw, value.subarray(e.start, e.end), { hash });
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
          throw err;
        }
        if (done) return n;
      }
    }
    return n;
  }

  /** Walks the whole chain and every checkpoint; reports the first bad seq with its reason. Never throws for damage. */
  async verify(opts: VerifyOptions = {}): Promise<VerifyReport> {
    const h = await this.db.get(HEAD_KEY);
    let head: JournalHead | null = null;
    let headProblem: ChainResult | null = null;
    try { head = h ? decodeHead(h) : null; } catch (err) {
      headProblem = { ok: false, records: 0, kind: 'corrupt', seq: 0, reason: 'undecodable', message: `head: ${(err as Error).message}` };
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
    const result = headProblem ?? v.finish(head);
    opts.onProgress?.(result.records, total);
    const checkpoints = await this.checkCheckpoints();
    return { result, checkpoints };
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
      return { seq: c.seq, stateHash: c.stateHash, state: c.state as S, skipped };
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
