/**
 * The end-to-end check of journal-spec v1 (format.md §5): walk the chunks in key order and report the first
 * problem. LevelDB frames and checksums its own log; this chain is what detects tampering, reordering,
 * deletion and truncation of our records above it.
 */
import { ThinjournalError } from './errors.js';
import {
  splitChunk, recordFromDecoded, sha256, seqOfKey, CHUNK_PREFIX, HASH_BYTES, type JournalRecord, type JournalHead,
} from './codec.js';

/**
 * Why a journal fails verification (format.md §8). The first nine are found walking the chain; the rest
 * above and below it: LevelDB's own files (`store`), the key spaces (`foreign-key`, `no-meta`) and the model
 * (`model`: a chain-valid record the model cannot apply).
 */
export type ChainProblemReason =
  | 'bad-hash' | 'gap' | 'undecodable' | 'unknown-version' | 'bad-event' | 'bad-key' | 'truncated' | 'head-mismatch' | 'torn-tail'
  | 'ts-backwards' | 'foreign-key' | 'no-meta' | 'store' | 'model';

export interface ChainProblem {
  /** 'torn': the journal ends inside an unfinished chunk (repairable by dropping it); 'corrupt': anything else. */
  readonly kind: 'corrupt' | 'torn';
  readonly seq: number;
  readonly reason: ChainProblemReason;
  readonly message: string;
  /** The LevelDB file (`store`) or key (`foreign-key`) the problem is in, where it is not a record. */
  readonly file?: string;
  readonly offset?: number | null;
  readonly key?: string;
}

export type ChainResult =
  | { readonly ok: true; readonly records: number; readonly last: JournalHead | null }
  | ({ readonly ok: false; readonly records: number } & ChainProblem);

const GENESIS_HEX = '0'.repeat(HASH_BYTES * 2);

const REASON_OF_CODE: Record<string, ChainProblemReason> = {
  ERR_UNDECODABLE: 'undecodable', ERR_UNKNOWN_VERSION: 'unknown-version', ERR_BAD_EVENT: 'bad-event',
};

/** Turns a failed ChainResult into the coded error open()/verify() report. */
export function chainError(r: ChainProblem, cause?: unknown): ThinjournalError {
  const where = r.file !== undefined ? `in ${r.file}${r.offset !== undefined && r.offset !== null ? ` at offset ${r.offset}` : ''}` : r.key !== undefined ? `at key ${JSON.stringify(r.key)}` : `at seq ${r.seq}`;
  return new ThinjournalError(r.kind === 'torn' ? 'ERR_JOURNAL_TORN' : 'ERR_JOURNAL_CORRUPT', `journal ${r.kind === 'torn' ? 'has a torn tail' : 'is corrupt'} ${where}: ${r.reason}: ${r.message}`, {
    seq: r.seq, reason: r.reason, ...(r.file !== undefined ? { file: r.file, offset: r.offset ?? null } : {}), ...(r.key !== undefined ? { key: r.key } : {}), ...(cause !== undefined ? { cause } : {}),
  });
}

/**
 * Incremental verifier. Feed chunks in key order with `chunk(key, value, isLast)`; it returns the first
 * problem (and keeps returning it), or null. `finish(head)` checks the stored head against the last record.
 * `onRecord` sees every record that verified, in order.
 */
export class ChainVerifier {
  private lastSeq = 0;
  private lastHash = GENESIS_HEX;
  private lastTs = -Infinity;
  private problem: ChainProblem | null = null;
  records = 0;

  /**
   * `start`: the record before the first chunk fed (default: genesis). `anchor`: a record the chain must pass
   * through with exactly this hash (a checkpoint's record), so that a walk started from a stored `prev` is
   * bound to something verified before it.
   */
  constructor(private readonly onRecord?: (r: JournalRecord) => void, start?: JournalHead, private readonly anchor?: JournalHead) {
    if (start) { this.lastSeq = start.seq; this.lastHash = start.hash; }
  }

  private fail(kind: ChainProblem['kind'], seq: number, reason: ChainProblemReason, message: string): ChainProblem {
    this.problem = { kind, seq, reason, message };
    return this.problem;
  }

  chunk(key: string, value: Uint8Array, isLast: boolean): ChainProblem | null {
    if (this.problem) return this.problem;
    const expected = this.lastSeq + 1;
    const first = seqOfKey(key, CHUNK_PREFIX);
    if (first === null) return this.fail('corrupt', expected, 'bad-key', `key ${JSON.stringify(key)} is not a chunk key`);
    if (first !== expected) {
      return first > expected
        ? this.fail('corrupt', expected, 'gap', `expected seq ${expected}, next chunk starts at ${first}`)
        : this.fail('corrupt', expected, 'bad-key', `chunk key says seq ${first}, expected ${expected}`);
    }
    let split;
    try {
      split = splitChunk(value);
    } catch (err) {
      return this.fail('corrupt', expected, 'undecodable', (err as Error).message);
    }
    for (const e of split.entries) {
      const want = this.lastSeq + 1;
      let rec: JournalRecord;
      try {
        rec = recordFromDecoded(e.raw, value.subarray(e.start, e.end));
      } catch (err) {
        const code = (err as { code?: string }).code ?? '';
        return this.fail('corrupt', want, REASON_OF_CODE[code] ?? 'undecodable', (err as Error).message);
      }
      if (rec.seq !== want) {
        return this.fail('corrupt', want, 'gap', `expected seq ${want}, found seq ${rec.seq}`);
      }
      if (rec.prev !== this.lastHash) {
        const at = Math.max(1, want - 1);
        return this.fail('corrupt', want === 1 ? 1 : at, 'bad-hash',
          want === 1 ? 'the first record\'s prev is not the genesis hash' : `record ${want}'s prev is not the hash of record ${at}: one of them was altered`);
      }
      if (rec.ts < this.lastTs) {
        return this.fail('corrupt', want, 'ts-backwards', `record ${want}'s ts ${rec.ts} is before record ${want - 1}'s ${this.lastTs} (ts never decreases along the chain)`);
      }
      if (this.anchor && rec.seq === this.anchor.seq && rec.hash !== this.anchor.hash) {
        return this.fail('corrupt', want, 'bad-hash', `record ${want} does not hash to the hash its checkpoint recorded: it, or a record before it, was altered`);
      }
      this.lastSeq = rec.seq;
      this.lastHash = rec.hash;
      this.lastTs = rec.ts;
      this.records++;
      this.onRecord?.(rec);
    }
    if (split.tornAt !== null) {
      if (isLast) return this.fail('torn', this.lastSeq + 1, 'torn-tail', `the last chunk (${key}) ends inside record ${this.lastSeq + 1}`);
      return this.fail('corrupt', this.lastSeq + 1, 'undecodable', `chunk ${key} ends inside a record but is not the last chunk`);
    }
    if (split.entries.length === 0) return this.fail('corrupt', expected, 'undecodable', `chunk ${key} holds no record`);
    return null;
  }

  /** Checks the stored head (null: none stored) against the records seen. */
  finish(head: JournalHead | null): ChainResult {
    if (this.problem) return { ok: false, records: this.records, ...this.problem };
    const headSeq = head?.seq ?? 0;
    if (headSeq > this.lastSeq) {
      this.fail('corrupt', this.lastSeq + 1, 'truncated', `the head says seq ${headSeq} but the records end at ${this.lastSeq}`);
    } else if (headSeq < this.lastSeq) {
      this.fail('corrupt', headSeq + 1, 'head-mismatch', `records go on to seq ${this.lastSeq} beyond the head at ${headSeq}`);
    } else if (head && head.hash !== this.lastHash) {
      this.fail('corrupt', this.lastSeq, 'bad-hash', `record ${this.lastSeq} does not hash to the head's hash`);
    }
    if (this.problem) return { ok: false, records: this.records, ...(this.problem as ChainProblem) };
    return { ok: true, records: this.records, last: this.lastSeq ? { seq: this.lastSeq, hash: this.lastHash } : null };
  }
}

/** Hash of a record's exact bytes, hex. */
export function recordHash(bytes: Uint8Array): string {
  return sha256(bytes).toString('hex');
}
