/**
 * The snapshot namespace: containerd's snapshots (key or name → kind, parent, labels, times) over the pool's
 * thin devices. Keys and names are arbitrary strings (containerd sends `default/5/extract-252941172-AC4p
 * sha256:…`); they are never device names or paths: each snapshot maps to a device `hash` the model picks
 * (`snap-<txId>`, the pool transaction id that creates it — unique for the pool's life).
 *
 * Keys and names share one namespace, as in containerd: Commit moves an active snapshot's entry from its
 * key to its name and keeps its device. A snapshot without a parent is a thin snapshot of the pool's base
 * image (a fresh, empty filesystem made once with dm.fs / dm.mkfsarg / dm.basesize); one with a parent is a
 * thin snapshot of the parent's device. The parent of any snapshot is committed, so an active or view
 * snapshot never has children and a committed one never changes device.
 *
 * Commands and their events:
 *   snapshotPrepare  TransactionBegan{addDevice}, SnapshotCreated, SnapshotPrepared   (one pool transaction)
 *   snapshotRemove   TransactionBegan{deleteDevice}, DeviceDeleted, SnapshotRemoved   (device deletable now)
 *                    DeletionDeferred, SnapshotRemoved                               (device busy: Cleanup deletes it)
 *   snapshotCommit   SnapshotCommitted                                               (namespace only)
 *   snapshotUpdate   SnapshotLabelsUpdated                                           (namespace only)
 * The transactions keep the device operation's op, so recovery treats them as it treats any snapshot creation
 * (undone short of its commit point) and deletion (completed once its intent is durable); the namespace
 * event follows its transaction's outcome.
 * A namespace event inside a transaction is checked against the committed namespace when it is journaled
 * and applied at TransactionCommitted (dropped by a roll-back), so a snapshot and its device appear and
 * disappear together after any crash. A transaction carries at most one namespace event.
 */
import { ThinjournalError, type JournalEvent, type EventType } from '@thinjournal/spec';
import type { PoolUsage } from './decide.js';
import { decide } from './decide.js';
import type { State } from './state.js';
import { BASE_HASH } from './validate.js';

export type SnapshotKind = 'active' | 'view' | 'committed';

export interface SnapshotEntry {
  /** the key (active, view) or name (committed). */
  readonly key: string;
  readonly kind: SnapshotKind;
  /** the committed snapshot it is based on, or null. */
  readonly parent: string | null;
  /** the thin device it lives on. */
  readonly hash: string;
  readonly labels: Readonly<Record<string, string>>;
  /** microseconds since the Unix epoch. */
  readonly created: number;
  readonly updated: number;
}

/** Limits of the namespace: a key or name is 1…MAX_SNAPSHOT_KEY_BYTES UTF-8 bytes without NUL. */
export const MAX_SNAPSHOT_KEY_BYTES = 4096;
/** Labels: at most this many; each label's key + value at most MAX_LABEL_BYTES (containerd's own limit); all
 *  together at most MAX_LABELS_TOTAL_BYTES (so an event fits the journal's 64 KiB body limit). */
export const MAX_LABELS = 256;
export const MAX_LABEL_BYTES = 4096;
export const MAX_LABELS_TOTAL_BYTES = 16 * 1024;

export type SnapshotCommand =
  /** containerd's Prepare (kind active) and View (kind view). `time`: now, microseconds since the epoch. */
  | { readonly type: 'snapshotPrepare'; readonly key: string; readonly kind: 'active' | 'view'; readonly parent?: string;
      readonly labels?: Readonly<Record<string, string>>; readonly time: number; readonly usage?: PoolUsage; readonly minFreeSpacePercent?: number }
  | { readonly type: 'snapshotCommit'; readonly key: string; readonly name: string; readonly labels?: Readonly<Record<string, string>>; readonly time: number }
  /** The device must be deactivated first (the caller's step); `busy`: the kernel reports it open. */
  | { readonly type: 'snapshotRemove'; readonly key: string; readonly busy?: boolean }
  /** Replaces the labels (the caller applies containerd's field paths). */
  | { readonly type: 'snapshotUpdate'; readonly key: string; readonly labels: Readonly<Record<string, string>>; readonly time: number };

export const SNAPSHOT_COMMANDS: ReadonlySet<string> = new Set(['snapshotPrepare', 'snapshotCommit', 'snapshotRemove', 'snapshotUpdate']);
export const NAMESPACE_EVENTS: ReadonlySet<string> = new Set<EventType>(['SnapshotPrepared', 'SnapshotCommitted', 'SnapshotLabelsUpdated', 'SnapshotRemoved']);

function invalid(message: string, details: Record<string, unknown> = {}): ThinjournalError {
  return new ThinjournalError('ERR_SNAPSHOT_INVALID', message, details);
}
const q = (s: string) => JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);

export function checkSnapshotKey(v: unknown, what = 'snapshot key'): string {
  if (typeof v !== 'string') throw invalid(`${what} must be a string`);
  if (v === '') throw invalid(`${what} is empty`);
  if (v.includes('\0')) throw invalid(`${what} ${q(v)} contains NUL`);
  const n = Buffer.byteLength(v);
  if (n > MAX_SNAPSHOT_KEY_BYTES) throw invalid(`${what} is ${n} bytes, over the limit of ${MAX_SNAPSHOT_KEY_BYTES}`);
  return v;
}

export function checkLabels(v: unknown): Readonly<Record<string, string>> {
  if (v === undefined || v === null) return Object.freeze({});
  if (typeof v !== 'object' || Array.isArray(v)) throw invalid('labels must be a map of strings');
  const out: Record<string, string> = {};
  let total = 0;
  const keys = Object.keys(v);
  if (keys.length > MAX_LABELS) throw invalid(`${keys.length} labels, over the limit of ${MAX_LABELS}`);
  for (const k of keys) {
    const val = (v as Record<string, unknown>)[k];
    if (typeof val !== 'string') throw invalid(`label ${q(k)}: the value must be a string`);
    if (k === '') throw invalid('a label key is empty');
    if (k.includes('\0') || val.includes('\0')) throw invalid(`label ${q(k)} contains NUL`);
    const n = Buffer.byteLength(k) + Buffer.byteLength(val);
    if (n > MAX_LABEL_BYTES) throw invalid(`label ${q(k)} is ${n} bytes (key + value), over the limit of ${MAX_LABEL_BYTES}`);
    total += n;
    out[k] = val;
  }
  if (total > MAX_LABELS_TOTAL_BYTES) throw invalid(`the labels are ${total} bytes together, over the limit of ${MAX_LABELS_TOTAL_BYTES}`);
  return Object.freeze(out);
}

function checkTime(v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new TypeError('snapshot command: time must be microseconds since the epoch (a safe integer ≥ 0)');
  return v;
}

function notFound(key: string): ThinjournalError {
  return new ThinjournalError('ERR_SNAPSHOT_NOT_FOUND', `snapshot ${q(key)} does not exist`, { key });
}

/** The snapshot stored under `key`, or ERR_SNAPSHOT_NOT_FOUND. */
export function getSnapshot(s: State, key: string): SnapshotEntry {
  const e = s.snapshots.get(key);
  if (!e) throw notFound(key);
  return e;
}

/** Keys of the snapshots whose parent is `key`, sorted. O(snapshots). */
export function snapshotChildren(s: State, key: string): string[] {
  const out: string[] = [];
  for (const e of s.snapshots.values()) if (e.parent === key) out.push(e.key);
  return out.sort();
}

/** The device hash a snapshot created by the next transaction gets. */
export function nextSnapshotHash(s: State): string {
  return `snap-${s.txId + 1}`;
}

/** The events for a snapshot command (see the header). Throws a coded error; never changes `state`. */
export function decideSnapshot(s: State, c: SnapshotCommand): readonly JournalEvent[] {
  switch (c.type) {
    case 'snapshotPrepare': return decidePrepare(s, c);
    case 'snapshotCommit': return decideCommit(s, c);
    case 'snapshotRemove': return decideRemove(s, c);
    case 'snapshotUpdate': return decideUpdate(s, c);
    default: {
      const never: never = c;
      throw new TypeError(`decideSnapshot: unknown command ${JSON.stringify((never as { type?: unknown }).type)}`);
    }
  }
}

function decidePrepare(s: State, c: Extract<SnapshotCommand, { type: 'snapshotPrepare' }>): readonly JournalEvent[] {
  const key = checkSnapshotKey(c.key);
  if (c.kind !== 'active' && c.kind !== 'view') throw invalid(`snapshot kind ${JSON.stringify(c.kind)} is not active or view`);
  const parent = c.parent === undefined || c.parent === '' ? null : checkSnapshotKey(c.parent, 'parent');
  const labels = checkLabels(c.labels);
  const time = checkTime(c.time);
  if (s.snapshots.has(key)) throw new ThinjournalError('ERR_SNAPSHOT_EXISTS', `snapshot ${q(key)} already exists`, { key });
  let originHash = BASE_HASH;
  if (parent !== null) {
    const p = s.snapshots.get(parent);
    if (!p) throw new ThinjournalError('ERR_SNAPSHOT_PARENT', `parent ${q(parent)} does not exist`, { key, parent });
    if (p.kind !== 'committed') throw new ThinjournalError('ERR_SNAPSHOT_PARENT', `parent ${q(parent)} is ${p.kind === 'active' ? 'an active' : 'a view'} snapshot, not a committed one`, { key, parent });
    originHash = p.hash;
  }
  const hash = nextSnapshotHash(s);
  const device = decide(s, {
    type: 'addDevice', hash, baseHash: originHash,
    ...(c.usage !== undefined ? { usage: c.usage } : {}), ...(c.minFreeSpacePercent !== undefined ? { minFreeSpacePercent: c.minFreeSpacePercent } : {}),
  });
  const txId = device[0]!.txId;
  const body = parent === null ? { key, kind: c.kind, hash, labels, created: time } : { key, kind: c.kind, parent, hash, labels, created: time };
  // The transaction is the device's (op addDevice): recovery treats it as any snapshot creation (undone when it
  // did not reach its commit point).
  return [...device, { type: 'SnapshotPrepared', txId, body }];
}

function decideCommit(s: State, c: Extract<SnapshotCommand, { type: 'snapshotCommit' }>): readonly JournalEvent[] {
  const key = checkSnapshotKey(c.key);
  const name = checkSnapshotKey(c.name, 'snapshot name');
  const labels = checkLabels(c.labels);
  const time = checkTime(c.time);
  requireSettled(s);
  const e = getSnapshot(s, key);
  if (e.kind !== 'active') throw new ThinjournalError('ERR_SNAPSHOT_NOT_ACTIVE', `snapshot ${q(key)} is ${e.kind}, not active: only an active snapshot can be committed`, { key });
  if (s.snapshots.has(name)) throw new ThinjournalError('ERR_SNAPSHOT_EXISTS', `snapshot ${q(name)} already exists`, { key: name });
  return [{ type: 'SnapshotCommitted', txId: s.txId, body: { key, name, labels, time } }];
}

function decideRemove(s: State, c: Extract<SnapshotCommand, { type: 'snapshotRemove' }>): readonly JournalEvent[] {
  const key = checkSnapshotKey(c.key);
  requireSettled(s);
  const e = getSnapshot(s, key);
  const kids = snapshotChildren(s, key);
  if (kids.length) throw new ThinjournalError('ERR_SNAPSHOT_HAS_CHILDREN', `cannot remove snapshot ${q(key)}: ${kids.length} snapshot(s) have it as parent (${q(kids[0]!)}…); remove them first`, { key });
  // The device goes now when it can; a busy one is marked for deferred deletion and Cleanup retries it.
  const device = decide(s, { type: 'deleteDevice', hash: e.hash, busy: c.busy === true, deferredDeletion: true });
  const removed: JournalEvent = { type: 'SnapshotRemoved', txId: device[0]?.txId ?? s.txId, body: { key } };
  // Inside the device's transaction (op deleteDevice), which recovery completes once its intent is durable.
  return [...device, removed];
}

function decideUpdate(s: State, c: Extract<SnapshotCommand, { type: 'snapshotUpdate' }>): readonly JournalEvent[] {
  const key = checkSnapshotKey(c.key);
  const labels = checkLabels(c.labels);
  const time = checkTime(c.time);
  requireSettled(s);
  getSnapshot(s, key);
  return [{ type: 'SnapshotLabelsUpdated', txId: s.txId, body: { key, labels, updated: time } }];
}

/** Namespace changes wait for a pending transaction (which may carry a namespace event of its own). */
function requireSettled(s: State): void {
  if (s.pending) throw new ThinjournalError('ERR_DEVICE_BUSY', `pool transaction ${s.pending.txId} (${s.pending.op}) is still pending`, { txId: s.pending.txId });
}

// ------------------------------------------------------------------------------------------------
// evolve's part: checks and application of namespace events (state.ts calls these).

/**
 * Why namespace event `e` cannot apply to namespace `ns`, or null. `deviceExists`: whether a device hash
 * exists (in the transaction's view, for an event inside one).
 */
export function namespaceConflict(ns: ReadonlyMap<string, SnapshotEntry>, e: { type: string; body: Readonly<Record<string, unknown>> }, deviceExists: (hash: string) => boolean): string | null {
  const b = e.body as Record<string, any>;
  switch (e.type) {
    case 'SnapshotPrepared': {
      if (ns.has(b.key)) return `snapshot ${q(b.key)} exists`;
      if (b.kind !== 'active' && b.kind !== 'view') return `kind ${JSON.stringify(b.kind)} is not active or view`;
      if (b.parent !== undefined) {
        const p = ns.get(b.parent);
        if (!p || p.kind !== 'committed') return `parent ${q(b.parent)} is not a committed snapshot`;
      }
      if (!deviceExists(b.hash)) return `no device ${q(b.hash)}`;
      for (const x of ns.values()) if (x.hash === b.hash) return `device ${q(b.hash)} already holds snapshot ${q(x.key)}`;
      return null;
    }
    case 'SnapshotCommitted': {
      const x = ns.get(b.key);
      if (!x) return `no snapshot ${q(b.key)}`;
      if (x.kind !== 'active') return `snapshot ${q(b.key)} is ${x.kind}, not active`;
      if (ns.has(b.name)) return `snapshot ${q(b.name)} exists`;
      return null;
    }
    case 'SnapshotLabelsUpdated':
      return ns.has(b.key) ? null : `no snapshot ${q(b.key)}`;
    case 'SnapshotRemoved': {
      if (!ns.has(b.key)) return `no snapshot ${q(b.key)}`;
      for (const x of ns.values()) if (x.parent === b.key) return `snapshot ${q(b.key)} is the parent of ${q(x.key)}`;
      return null;
    }
    default:
      return 'not a namespace event';
  }
}

/** Applies a namespace event that namespaceConflict accepted, in place. `detach` copies kept strings. */
export function applyNamespaceEvent(ns: Map<string, SnapshotEntry>, e: { type: string; body: Readonly<Record<string, unknown>> }, detach: (s: string) => string): void {
  const b = e.body as Record<string, any>;
  const labels = (l: Record<string, string>) => Object.freeze(Object.fromEntries(Object.entries(l).map(([k, v]) => [detach(k), detach(v)])));
  switch (e.type) {
    case 'SnapshotPrepared':
      ns.set(b.key, Object.freeze({ key: detach(b.key), kind: b.kind as 'active' | 'view', parent: b.parent === undefined ? null : detach(b.parent), hash: detach(b.hash), labels: labels(b.labels), created: b.created, updated: b.created }));
      return;
    case 'SnapshotCommitted': {
      const x = ns.get(b.key)!;
      ns.delete(b.key);
      ns.set(b.name, Object.freeze({ key: detach(b.name), kind: 'committed', parent: x.parent, hash: x.hash, labels: labels(b.labels), created: b.time, updated: b.time }));
      return;
    }
    case 'SnapshotLabelsUpdated': {
      const x = ns.get(b.key)!;
      ns.set(b.key, Object.freeze({ ...x, labels: labels(b.labels), updated: b.updated }));
      return;
    }
    case 'SnapshotRemoved':
      ns.delete(b.key);
      return;
  }
}

/** A snapshot's row in the canonical state hash and the checkpoint form (fixed field order). */
export function snapshotRow(x: SnapshotEntry): unknown {
  return [x.key, x.kind, x.parent, x.hash, Object.keys(x.labels).sort().map((k) => [k, x.labels[k]]), x.created, x.updated];
}

/** The inverse of snapshotRow, for fromPlain; null when `r` is not a row. */
export function snapshotFromRow(r: unknown): SnapshotEntry | null {
  if (!Array.isArray(r) || r.length !== 7) return null;
  const [key, kind, parent, hash, labels, created, updated] = r as unknown[];
  if (typeof key !== 'string' || (kind !== 'active' && kind !== 'view' && kind !== 'committed') || (parent !== null && typeof parent !== 'string') || typeof hash !== 'string') return null;
  if (!Array.isArray(labels) || !labels.every((l) => Array.isArray(l) && l.length === 2 && typeof l[0] === 'string' && typeof l[1] === 'string')) return null;
  if (!Number.isSafeInteger(created) || !Number.isSafeInteger(updated)) return null;
  return Object.freeze({ key, kind, parent: parent as string | null, hash, labels: Object.freeze(Object.fromEntries(labels as [string, string][])), created: created as number, updated: updated as number });
}
