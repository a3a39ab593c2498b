/**
 * journal-spec v1 record codec (journal-spec/format.md is normative; this is its implementation).
 *
 * msgpack is msgpackr pinned at 2.1.4 with `useRecords: false` (no structures/records extension: plain
 * msgpack maps any decoder reads), `mapsAsObjects: true`, `int64AsType: 'number'`. Canonical form:
 *  - envelope keys in the order v, seq, txId, ts, type, actor, reason, body, prev;
 *  - body keys in the order of the event's schema (EVENT_SCHEMAS), absent optional fields omitted;
 *    `strmap` keys sorted by UTF-16 code unit;
 *  - integers in [−2^31, 2^32) in msgpack's smallest int form (msgpackr's choice), every other safe integer
 *    as int64 (0xd3). msgpackr would write those as float64; we write int64 explicitly so every msgpack
 *    reader sees an integer. Decoders accept any msgpack int form and refuse values beyond 2^53−1.
 * The hash of a record is SHA-256 over its exact stored bytes; records are never re-encoded to be checked.
 */
import { createHash } from 'node:crypto';
import { Packr } from 'msgpackr';
import { ThinjournalError } from './errors.js';
import { EVENT_SCHEMAS, validateBody, isUint, MAX_ID_BYTES, MAX_STR_BYTES, type EventType, type BodySchema } from './events.js';

export const FORMAT_VERSION = 1;
export const HASH_BYTES = 32;
export const GENESIS_PREV: Uint8Array = new Uint8Array(HASH_BYTES);
/** Largest encoded body, in bytes. */
export const MAX_BODY_BYTES = 64 * 1024;

export const packr = new Packr({ useRecords: false, mapsAsObjects: true, int64AsType: 'number' });

/** What replay needs of a record: the envelope without its chain fields. A decoded envelope is one. */
export interface ReplayRecord {
  readonly seq: number;
  readonly txId: number;
  readonly ts: number;
  readonly type: EventType;
  readonly actor: string;
  readonly reason: string;
  readonly body: Readonly<Record<string, unknown>>;
}

/** A decoded, validated record with its chain fields. `prev` and `hash` are lowercase hex. */
export interface JournalRecord extends ReplayRecord {
  readonly v: number;
  readonly prev: string;
  readonly hash: string;
}

/** The fields of a record before it is encoded. */
export interface RecordFields {
  seq: number;
  txId: number;
  ts: number;
  type: string;
  actor: string;
  reason: string;
  body: unknown;
  prev: Uint8Array;
}

const INT_MIN32 = -(2 ** 31);
const UINT_MAX32 = 2 ** 32 - 1;

/** Numbers that msgpackr would write as float64 but are integers become BigInt (→ int64). */
function int(v: number): number | bigint {
  return Number.isInteger(v) && (v < INT_MIN32 || v > UINT_MAX32) ? BigInt(v) : v;
}

function canonicalBody(type: EventType, body: Record<string, unknown>): Record<string, unknown> {
  const schema: BodySchema = EVENT_SCHEMAS[type];
  const out: Record<string, unknown> = {};
  for (const [spec, kind] of Object.entries(schema)) {
    const name = spec.endsWith('?') ? spec.slice(0, -1) : spec;
    const v = body[name];
    if (v === undefined) continue;
    if (kind === 'uint') out[name] = int(v as number);
    else if (kind === 'strmap') {
      const m = v as Record<string, string>;
      const sorted: Record<string, string> = {};
      for (const k of Object.keys(m).sort()) sorted[k] = m[k]!;
      out[name] = sorted;
    } else out[name] = v;
  }
  return out;
}

function bad(message: string, details: Record<string, unknown> = {}): ThinjournalError {
  return new ThinjournalError('ERR_BAD_EVENT', message, details);
}

/** Validates an event's caller-supplied parts (type, txId, body, actor, reason). Throws ERR_BAD_EVENT. */
export function validateEvent(type: unknown, txId: unknown, body: unknown, actor: unknown, reason: unknown): void {
  validateBody(type, body);
  if (!isUint(txId)) throw bad(`${type}: txId must be a safe integer ≥ 0, got ${String(txId)}`, { type });
  if (typeof actor !== 'string' || Buffer.byteLength(actor) > MAX_ID_BYTES || actor.includes('\0')) throw bad(`${type}: actor must be a string of at most ${MAX_ID_BYTES} bytes`, { type });
  if (typeof reason !== 'string' || Buffer.byteLength(reason) > MAX_STR_BYTES || reason.includes('\0')) throw bad(`${type}: reason must be a string of at most ${MAX_STR_BYTES} bytes`, { type });
}

/** Encodes one record canonically. Validates first: throws ERR_BAD_EVENT and encodes nothing on bad input. */
export function encodeRecord(f: RecordFields): Buffer {
  validateEvent(f.type, f.txId, f.body, f.actor, f.reason);
  if (!isUint(f.seq) || f.seq < 1) throw bad(`seq must be a safe integer ≥ 1, got ${String(f.seq)}`);
  if (!isUint(f.ts)) throw bad(`ts must be a safe integer ≥ 0, got ${String(f.ts)}`);
  if (!(f.prev instanceof Uint8Array) || f.prev.length !== HASH_BYTES) throw bad('prev must be 32 bytes');
  const type = f.type as EventType;
  const body = canonicalBody(type, f.body as Record<string, unknown>);
  if (packr.pack(body).length > MAX_BODY_BYTES) throw bad(`${type}: body larger than ${MAX_BODY_BYTES} bytes`, { type });
  return packr.pack({
    v: FORMAT_VERSION, seq: int(f.seq), txId: int(f.txId), ts: int(f.ts), type,
    actor: f.actor, reason: f.reason, body, prev: Buffer.from(f.prev.buffer, f.prev.byteOffset, f.prev.length),
  });
}

export function sha256(bytes: Uint8Array): Buffer {
  return createHash('sha256').update(bytes).digest();
}

const ENVELOPE_KEYS = ['v', 'seq', 'txId', 'ts', 'type', 'actor', 'reason', 'body', 'prev'] as const;

/**
 * Upcasters: `UPCASTERS[n]` turns a decoded version-n envelope into version n+1. v1 is the first version,
 * so the table is empty; a record older than the oldest upcaster, or newer than FORMAT_VERSION, is refused.
 */
export const UPCASTERS: Readonly<Record<number, (r: Record<string, unknown>) => Record<string, unknown>>> = {};

function undecodable(message: string, details: Record<string, unknown> = {}): ThinjournalError {
  return new ThinjournalError('ERR_UNDECODABLE', message, details);
}

/**
 * Checks a decoded envelope in place (format.md §3, events.md) and returns it, upcast if older: the replay fast
 * path, which allocates nothing per record. Errors: ERR_UNDECODABLE (not an envelope), ERR_UNKNOWN_VERSION,
 * ERR_BAD_EVENT (envelope fine, body not).
 */
export function checkEnvelope(raw: unknown): ReplayRecord & { readonly prev: Uint8Array } {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || raw instanceof Uint8Array) throw undecodable('record is not a msgpack map');
  let r = raw as Record<string, unknown>;
  const v = r.v;
  if (!Number.isSafeInteger(v)) throw undecodable('record has no integer version "v"');
  if ((v as number) > FORMAT_VERSION || (v as number) < 1) {
    throw new ThinjournalError('ERR_UNKNOWN_VERSION', `record format version ${String(v)} is not supported (this build reads 1..${FORMAT_VERSION})`, { version: v });
  }
  for (let n = v as number; n < FORMAT_VERSION; n++) {
    const up = UPCASTERS[n];
    if (!up) throw new ThinjournalError('ERR_UNKNOWN_VERSION', `no upcaster from record version ${n}`, { version: n });
    r = up(r);
  }
  let count = 0;
  for (const k in r) if (Object.hasOwn(r, k)) count++;
  if (count !== ENVELOPE_KEYS.length || !ENVELOPE_KEYS.every((k) => r[k] !== undefined)) {
    throw undecodable(`record envelope keys are [${Object.keys(r).join(', ')}], expected [${ENVELOPE_KEYS.join(', ')}]`);
  }
  const prev = r.prev;
  if (!(prev instanceof Uint8Array) || prev.length !== HASH_BYTES) throw undecodable('record "prev" is not 32 bytes');
  if (!isUint(r.seq) || (r.seq as number) < 1) throw undecodable('record "seq" is not a safe integer ≥ 1');
  if (!isUint(r.ts)) throw undecodable('record "ts" is not a safe integer ≥ 0');
  validateEvent(r.type, r.txId, r.body, r.actor, r.reason);
  return r as unknown as ReplayRecord & { readonly prev: Uint8Array };
}

/**
 * Turns a decoded envelope into a validated record. `bytes` are the record's exact stored bytes (hashed).
 * With `hash: false`, `hash` and `prev` are left empty; everything else is checked.
 */
export function recordFromDecoded(raw: unknown, bytes: Uint8Array, opts: { hash?: boolean } = {}): JournalRecord {
  const r = checkEnvelope(raw);
  const prev = r.prev;
  return {
    v: FORMAT_VERSION, seq: r.seq, txId: r.txId, ts: r.ts, type: r.type, actor: r.actor, reason: r.reason, body: r.body,
    prev: opts.hash === false ? '' : Buffer.from(prev.buffer, prev.byteOffset, prev.length).toString('hex'),
    hash: opts.hash === false ? '' : sha256(bytes).toString('hex'),
  };
}

/** Decodes exactly one record from `bytes` (no trailing bytes). */
export function decodeRecord(bytes: Uint8Array): JournalRecord {
  let raw: unknown;
  try {
    raw = packr.unpack(bytes);
  } catch (cause) {
    throw undecodable('record bytes are not valid msgpack', { cause });
  }
  return recordFromDecoded(raw, bytes);
}

/** One record of a chunk with its byte range inside the chunk value. */
export interface ChunkEntry { readonly raw: unknown; readonly start: number; readonly end: number }

/**
 * Splits a chunk value (concatenated records) into decoded values with their byte ranges. If the value ends
 * inside a record, the complete entries are returned with `tornAt` = offset of the incomplete one; any other
 * decoding failure throws ERR_UNDECODABLE with `offset`.
 */
export function splitChunk(value: Uint8Array): { entries: ChunkEntry[]; tornAt: number | null } {
  const entries: ChunkEntry[] = [];
  try {
    packr.unpackMultiple(value as Buffer, (raw: unknown, start?: number, end?: number) => {
      entries.push({ raw, start: start!, end: end! });
    });
  } catch (cause) {
    const at = entries.length ? entries[entries.length - 1]!.end : 0;
    if ((cause as { incomplete?: boolean }).incomplete) return { entries, tornAt: at };
    throw undecodable(`chunk bytes are not valid msgpack at offset ${at}`, { cause, offset: at });
  }
  return { entries, tornAt: null };
}

// ------------------------------------------------------------------------------------------------
// Key layout (format.md §2). Keys are ASCII strings; seqs are 16 lowercase hex digits, zero-padded, so
// lexicographic key order is numeric order.
export const META_KEY = 'm';
export const HEAD_KEY = 'h';
export const CHUNK_PREFIX = 'r';
export const CHECKPOINT_PREFIX = 'c';
const HEX16 = /^[0-9a-f]{16}$/;

export function seqHex(seq: number): string {
  return seq.toString(16).padStart(16, '0');
}
export function chunkKey(firstSeq: number): string {
  return CHUNK_PREFIX + seqHex(firstSeq);
}
export function checkpointKey(seq: number): string {
  return CHECKPOINT_PREFIX + seqHex(seq);
}
/** The seq in a chunk or checkpoint key, or null if the key is not of that form. */
export function seqOfKey(key: string, prefix: string): number | null {
  if (key.length !== 17 || key[0] !== prefix || !HEX16.test(key.slice(1))) return null;
  const n = parseInt(key.slice(1), 16);
  return Number.isSafeInteger(n) ? n : null;
}

export interface JournalMeta { readonly format: number; readonly journalId: string; readonly createdAt: number }
export interface JournalHead { readonly seq: number; readonly hash: string }

export function encodeMeta(m: JournalMeta): Buffer {
  return packr.pack({ format: m.format, journalId: m.journalId, createdAt: int(m.createdAt) });
}
export function decodeMeta(bytes: Uint8Array): JournalMeta {
  let m: Record<string, unknown>;
  try { m = packr.unpack(bytes); } catch (cause) { throw undecodable('meta record is not msgpack', { cause }); }
  if (typeof m !== 'object' || m === null || !Number.isSafeInteger(m.format) || typeof m.journalId !== 'string' || !isUint(m.createdAt)) {
    throw undecodable('meta record is malformed');
  }
  if ((m.format as number) !== FORMAT_VERSION) {
    throw new ThinjournalError('ERR_UNKNOWN_VERSION', `journal format ${String(m.format)} is not supported (this build reads ${FORMAT_VERSION})`, { version: m.format });
  }
  return { format: m.format as number, journalId: m.journalId, createdAt: m.createdAt as number };
}
export function encodeHead(h: JournalHead): Buffer {
  return packr.pack({ seq: int(h.seq), hash: Buffer.from(h.hash, 'hex') });
}
export function decodeHead(bytes: Uint8Array): JournalHead {
  let h: Record<string, unknown>;
  try { h = packr.unpack(bytes); } catch (cause) { throw undecodable('head record is not msgpack', { cause }); }
  if (typeof h !== 'object' || h === null || !isUint(h.seq) || !(h.hash instanceof Uint8Array) || h.hash.length !== HASH_BYTES) {
    throw undecodable('head record is malformed');
  }
  return { seq: h.seq as number, hash: Buffer.from(h.hash).toString('hex') };
}

export interface StoredCheckpoint {
  readonly seq: number;
  /** hash of the record at `seq`: binds the checkpoint to the chain. */
  readonly recordHash: string;
  /** the model's canonical state hash (hex). */
  readonly stateHash: string;
  /** the state, encoded with this codec's packr. */
  readonly state: unknown;
}
export function encodeCheckpoint(c: StoredCheckpoint): Buffer {
  const state = packr.pack(c.state);
  return packr.pack({ v: FORMAT_VERSION, seq: int(c.seq), recordHash: Buffer.from(c.recordHash, 'hex'), stateHash: c.stateHash, state, digest: sha256(state) });
}
/** Throws ERR_CHECKPOINT_INVALID if the stored checkpoint is malformed or its state digest does not match. */
export function decodeCheckpoint(bytes: Uint8Array): StoredCheckpoint {
  const invalid = (why: string, cause?: unknown) => new ThinjournalError('ERR_CHECKPOINT_INVALID', `checkpoint: ${why}`, cause === undefined ? {} : { cause });
  let c: Record<string, unknown>;
  try { c = packr.unpack(bytes); } catch (cause) { throw invalid('not msgpack', cause); }
  if (typeof c !== 'object' || c === null || c.v !== FORMAT_VERSION || !isUint(c.seq) || !(c.recordHash instanceof Uint8Array)
    || typeof c.stateHash !== 'string' || !(c.state instanceof Uint8Array) || !(c.digest instanceof Uint8Array)) throw invalid('malformed');
  if (!sha256(c.state).equals(c.digest)) throw invalid('state digest mismatch');
  let state: unknown;
  try { state = packr.unpack(c.state); } catch (cause) { throw invalid('state not msgpack', cause); }
  return { seq: c.seq as number, recordHash: Buffer.from(c.recordHash).toString('hex'), stateHash: c.stateHash, state };
}
