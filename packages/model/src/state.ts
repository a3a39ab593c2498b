/**
 * State and evolve: events → state.
 *
 * Transactions (journal-spec/events.md "Transactions"). Pool-metadata events — BaseImageCreated,
 * DeviceCreated, SnapshotCreated, DeviceDeleted, PoolResized — only occur inside a transaction: after a
 * TransactionBegan stamped T+1 (T = state.txId, the last committed pool transaction id) and stamped T+1
 * themselves. They are checked against the committed state plus the transaction's earlier events, then kept
 * aside in `state.pending`; the committed state does not show them. TransactionCommitted (T+1) applies them
 * and sets txId = T+1; TransactionRolledBack (T+1) drops them and txId stays T.
 * One exception, deliberately: the device-id cursor `nextDeviceId` advances when an id is allocated in an
 * intent and does NOT go back on rollback. The kernel may still hold a rolled-back id (a create_thin that
 * reached the metadata before the crash), so the id must not be handed out again soon (see decide.ts).
 * Only one transaction may be pending at a time.
 *
 * All other events (activation, mounts, DeletionDeferred, DeviceResized, PoolDevicesAttached, Checkpoint) do
 * not change pool metadata: they carry the committed txId T and apply at once, a pending transaction or not.
 * They may not touch a device that the pending transaction creates or deletes. PoolDevicesAttached changes the
 * pool's device paths in the committed state and in the pending transaction's view of the pool alike.
 *
 * An event that cannot apply is ERR_EVENT_CONFLICT, and the state is unchanged.
 *
 * Costs: `evolve` is the pure reference; it shares structure with its input and copies the device map only
 * when the event changes a device (O(devices)). `Projection` applies the same code in place, O(1) per event,
 * and its `state` is an immutable snapshot taken in O(1) (versioned-map.ts), however many devices there are
 * and however often it is read between events: use it for replay and for the engine's and driver's live state.
 */
import { createHash } from 'node:crypto';
import { ThinjournalError, type JournalEvent, type EventType } from '@thinjournal/spec';
import { MAX_DEVICE_ID, isValidBlockSize } from './validate.js';
import { NAMESPACE_EVENTS, namespaceConflict, applyNamespaceEvent, snapshotRow, snapshotFromRow, type SnapshotEntry } from './snapshots.js';
import { VersionedMap } from './versioned-map.js';

export interface PoolInfo {
  readonly poolName: string;
  /** thin devices are activated as `<devicePrefix>-<hash>` (`<devicePrefix>-base` for the base image). */
  readonly devicePrefix: string;
  readonly dataDevice: string;
  readonly metadataDevice: string;
  readonly loopback: boolean;
  readonly dataSize: number;
  readonly metadataSize: number;
  readonly blockSize: number;
  /** the dm.* options in force when the pool was initialised (see options.ts effectiveOptions). */
  readonly options: Readonly<Record<string, string>>;
}

export interface BaseInfo {
  readonly hash: string;
  readonly deviceId: number;
  readonly fs: string;
  readonly uuid: string;
}

export interface MountPoint {
  readonly path: string;
  readonly options: string | null;
}

export interface Device {
  readonly hash: string;
  /** dm-thin device id, 0 … 2^24−1, unique among devices (deletion-deferred ones included). */
  readonly deviceId: number;
  /** bytes */
  readonly size: number;
  /** the snapshot's origin; null for the base image and for empty devices (DeviceCreated). */
  readonly parentHash: string | null;
  /** the pool transaction id that created it. */
  readonly txId: number;
  /** carries a filesystem (the base image after mkfs, and its snapshots); false for empty thin devices. */
  readonly initialised: boolean;
  /** a dm device for it exists (as far as the journal knows). */
  readonly active: boolean;
  /** the dm device name while active, else null. */
  readonly dmName: string | null;
  /** deactivated with deferred removal: the kernel removes the dm device on last close. Implies active. */
  readonly removalDeferred: boolean;
  /** sorted by path; unique paths. */
  readonly mounts: readonly MountPoint[];
  /** deletion was requested while busy (Docker's `Deleted`): the device awaits deferred deletion. */
  readonly deletionDeferred: boolean;
}

export interface PendingTransaction {
  readonly txId: number;
  readonly op: string;
  readonly hash: string | null;
  /** the transaction's pool-metadata events so far, in journal order; applied on commit. */
  readonly events: readonly JournalEvent[];
}

export interface State {
  readonly pool: PoolInfo | null;
  /** the last committed pool transaction id. */
  readonly txId: number;
  /** Docker's NextDeviceID: the last id handed out; allocation continues at the next one (decide.ts). */
  readonly nextDeviceId: number;
  readonly base: BaseInfo | null;
  /** committed devices by hash. */
  readonly devices: ReadonlyMap<string, Device>;
  /** index: device id → hash (derived from devices). */
  readonly deviceIds: ReadonlyMap<number, string>;
  /** index: parent hash → number of snapshots of it (derived from devices). */
  readonly childCounts: ReadonlyMap<string, number>;
  /** hashes awaiting deferred deletion, sorted (derived from devices). */
  readonly deferredDeletions: readonly string[];
  readonly pending: PendingTransaction | null;
  /** the snapshot namespace (snapshots.ts): key or name → snapshot; committed entries only. */
  readonly snapshots: ReadonlyMap<string, SnapshotEntry>;
}

const EMPTY_MOUNTS: readonly MountPoint[] = Object.freeze([]);

export const initialState: State = Object.freeze({
  pool: null,
  txId: 0,
  nextDeviceId: 0,
  base: null,
  devices: new Map<string, Device>(),
  deviceIds: new Map<number, string>(),
  childCounts: new Map<string, number>(),
  deferredDeletions: Object.freeze([]) as readonly string[],
  pending: null,
  snapshots: new Map<string, SnapshotEntry>(),
});

/** The events that change pool metadata and so belong inside a transaction. */
export const TRANSACTIONAL_EVENTS: ReadonlySet<EventType> = new Set<EventType>([
  'BaseImageCreated', 'DeviceCreated', 'SnapshotCreated', 'DeviceDeleted', 'PoolResized',
]);

function conflict(e: { type: string; txId: number }, why: string, details: Record<string, unknown> = {}): ThinjournalError {
  return new ThinjournalError('ERR_EVENT_CONFLICT', `${e.type} (txId ${e.txId}) cannot apply: ${why}`, { type: e.type, txId: e.txId, ...details });
}

/** What an event must look like to evolve; records from the journal fit (type, txId, body). */
export interface EventLike {
  readonly type: string;
  readonly txId: number;
  readonly body: Readonly<Record<string, unknown>>;
}

/**
 * The changes of the pending transaction, over the committed state. A transaction touches a handful of
 * keys, so the changes are small association lists (cheaper to build than Maps on the replay path).
 */
interface Overlay {
  /** hash → the device as the transaction leaves it; null = deleted. */
  readonly devices: Assoc<string, Device | null>;
  /** device id → owner; null = freed. */
  readonly ids: Assoc<number, string | null>;
  /** parent hash → change in its snapshot count. */
  readonly childDelta: Assoc<string, number>;
  pool: PoolInfo | null;
  base: BaseInfo | null;
  baseSet: boolean;
}

/** A tiny map: alternating keys and values. */
type Assoc<K, V> = (K | V)[];
function assocIndex<K>(a: readonly unknown[], k: K): number {
  for (let i = 0; i < a.length; i += 2) if (a[i] === k) return i;
  return -1;
}
function assocSet<K, V>(a: Assoc<K, V>, k: K, v: V): void {
  const i = assocIndex(a, k);
  if (i < 0) a.push(k, v); else a[i + 1] = v;
}

interface WorkPending {
  readonly txId: number;
  readonly op: string;
  readonly hash: string | null;
  readonly events: JournalEvent[];
  readonly ov: Overlay;
}

function newOverlay(): Overlay {
  return { devices: [], ids: [], childDelta: [], pool: null, base: null, baseSet: false };
}

/** The device maps once this Work owns them. */
interface OwnedMaps {
  readonly devices: VersionedMap<string, Device>;
  readonly ids: VersionedMap<number, string>;
  readonly children: VersionedMap<string, number>;
}

/**
 * The mutable engine behind evolve and Projection. A Work built from a State reads that State's (immutable)
 * maps until its first write, which copies them once into VersionedMaps it owns (versioned-map.ts); from then
 * on writes are in place and a snapshot is O(1), so every State handed out stays immutable and neither taking
 * one nor the writes after it cost O(devices).
 */
class Work {
  pool: PoolInfo | null = null;
  txId = 0;
  nextDeviceId = 0;
  base: BaseInfo | null = null;
  devices: ReadonlyMap<string, Device> = new Map();
  ids: ReadonlyMap<number, string> = new Map();
  children: ReadonlyMap<string, number> = new Map();
  deferred: Set<string> = new Set();
  pending: WorkPending | null = null;
  snaps: ReadonlyMap<string, SnapshotEntry> = new Map();
  /** null until the first write to the device maps (they are then `devices`, `ids`, `children`). */
  private owned: OwnedMaps | null = null;
  /** the namespace map once owned (it is then `snaps`). */
  private snapsOwned: VersionedMap<string, SnapshotEntry> | null = null;
  private deferredSorted: readonly string[] | null = Object.freeze([]) as readonly string[];
  private last: State | null = null;

  static from(s: State): Work {
    const w = new Work();
    w.pool = s.pool;
    w.txId = s.txId;
    w.nextDeviceId = s.nextDeviceId;
    w.base = s.base;
    w.devices = s.devices;
    w.ids = s.deviceIds;
    w.children = s.childCounts;
    w.deferred = new Set(s.deferredDeletions);
    w.deferredSorted = s.deferredDeletions;
    w.snaps = s.snapshots;
    w.last = s;
    if (s.pending) {
      const p = s.pending;
      w.pending = { txId: p.txId, op: p.op, hash: p.hash, events: [], ov: newOverlay() };
      // Rebuild the overlay; the events applied before, so they apply again. Re-applying moves the cursor,
      // which must stay where the state has it.
      for (const e of p.events) w.apply(e);
      w.nextDeviceId = s.nextDeviceId;
      w.last = s;
    }
    return w;
  }

  private own(): OwnedMaps {
    this.last = null;
    if (this.owned === null) {
      this.owned = { devices: new VersionedMap(this.devices), ids: new VersionedMap(this.ids), children: new VersionedMap(this.children) };
      this.devices = this.owned.devices;
      this.ids = this.owned.ids;
      this.children = this.owned.children;
    }
    return this.owned;
  }

  /**
   * A State over the live maps, not a snapshot: valid only until the next write. For callers that read and
   * drop it at once (Projection.peek), saving the snapshot's small allocations.
   */
  view(): State {
    if (this.last) return this.last;
    if (this.deferredSorted === null) this.deferredSorted = Object.freeze([...this.deferred].sort());
    const p = this.pending;
    return {
      pool: this.pool, txId: this.txId, nextDeviceId: this.nextDeviceId, base: this.base, devices: this.devices,
      deviceIds: this.ids, childCounts: this.children, deferredDeletions: this.deferredSorted,
      pending: p && { txId: p.txId, op: p.op, hash: p.hash, events: p.events }, snapshots: this.snaps,
    };
  }

  snapshot(): State {
    if (this.last) return this.last;
    if (this.deferredSorted === null) this.deferredSorted = Object.freeze([...this.deferred].sort());
    const p = this.pending;
    const o = this.owned;
    this.last = Object.freeze({
      pool: this.pool,
      txId: this.txId,
      nextDeviceId: this.nextDeviceId,
      base: this.base,
      devices: o ? o.devices.snapshot() : this.devices,
      deviceIds: o ? o.ids.snapshot() : this.ids,
      childCounts: o ? o.children.snapshot() : this.children,
      deferredDeletions: this.deferredSorted,
      pending: p && Object.freeze({ txId: p.txId, op: p.op, hash: p.hash, events: Object.freeze(p.events.slice()) }),
      snapshots: this.snapsOwned ? this.snapsOwned.snapshot() : this.snaps,
    });
    return this.last;
  }

  // --- reads through the pending overlay (for pool-metadata events) --------------------------------
  private viewDevice(h: string): Device | undefined {
    const ov = this.pending?.ov;
    const i = ov ? assocIndex(ov.devices, h) : -1;
    if (i >= 0) return (ov!.devices[i + 1] as Device | null) ?? undefined;
    return this.devices.get(h);
  }
  private viewIdOwner(id: number): string | undefined {
    const ov = this.pending?.ov;
    const i = ov ? assocIndex(ov.ids, id) : -1;
    if (i >= 0) return (ov!.ids[i + 1] as string | null) ?? undefined;
    return this.ids.get(id);
  }
  private viewChildren(h: string): number {
    const ov = this.pending?.ov;
    const i = ov ? assocIndex(ov.childDelta, h) : -1;
    return (this.children.get(h) ?? 0) + (i >= 0 ? (ov!.childDelta[i + 1] as number) : 0);
  }
  private childDelta(h: string, by: number): void {
    const cd = this.pending!.ov.childDelta;
    const i = assocIndex(cd, h);
    if (i < 0) cd.push(h, by); else cd[i + 1] = (cd[i + 1] as number) + by;
  }
  private viewPool(): PoolInfo | null {
    return this.pending?.ov.pool ?? this.pool;
  }
  private viewBase(): BaseInfo | null {
    const ov = this.pending?.ov;
    return ov && ov.baseSet ? ov.base : this.base;
  }

  // --- writes to the committed state --------------------------------------------------------------
  /** Replaces `before` (undefined: a new device) by `d`. */
  private setDevice(before: Device | undefined, d: Device): void {
    this.own().devices.set(d.hash, d);
    if ((before?.deletionDeferred ?? false) !== d.deletionDeferred) {
      if (d.deletionDeferred) this.deferred.add(d.hash); else this.deferred.delete(d.hash);
      this.deferredSorted = null;
    }
  }

  apply(e: EventLike): void {
    const b = e.body as Record<string, any>;
    if (TRANSACTIONAL_EVENTS.has(e.type as EventType)) return this.applyInTransaction(e, b);
    if (NAMESPACE_EVENTS.has(e.type)) return this.applyNamespace(e);
    switch (e.type) {
      case 'PoolInitialised': {
        if (this.pool) throw conflict(e, `the pool is already initialised (${this.pool.poolName})`);
        if (this.pending) throw conflict(e, 'a transaction is pending');
        if (!isValidBlockSize(b.blockSize)) throw conflict(e, `block size ${b.blockSize} is not a multiple of 64 KiB in 64 KiB…1 GiB`);
        if (b.dataSize < b.blockSize) throw conflict(e, `data size ${b.dataSize} is smaller than one block`);
        const name: string = b.poolName;
        this.last = null;
        this.pool = Object.freeze({
          poolName: name,
          devicePrefix: b.devicePrefix ?? (name.endsWith('-pool') ? name.slice(0, -'-pool'.length) : name),
          dataDevice: b.dataDevice, metadataDevice: b.metadataDevice, loopback: b.loopback,
          dataSize: b.dataSize, metadataSize: b.metadataSize, blockSize: b.blockSize,
          options: Object.freeze({ ...(b.options ?? {}) }),
        });
        // The pool's transaction id when it was created (0) or adopted.
        this.txId = e.txId;
        return;
      }
      case 'TransactionBegan': {
        if (!this.pool) throw conflict(e, 'the pool is not initialised');
        if (this.pending) throw conflict(e, `transaction ${this.pending.txId} (${this.pending.op}) is still pending`);
        if (e.txId !== this.txId + 1) throw conflict(e, `expected txId ${this.txId + 1} (committed ${this.txId} + 1)`);
        this.last = null;
        this.pending = { txId: e.txId, op: b.op, hash: b.hash ?? null, events: [], ov: newOverlay() };
        return;
      }
      case 'TransactionCommitted':
      case 'TransactionRolledBack': {
        const p = this.pending;
        if (!p) throw conflict(e, 'no transaction is pending');
        if (e.txId !== p.txId) throw conflict(e, `the pending transaction is ${p.txId}`);
        if (e.type === 'TransactionCommitted') this.commit(p);
        this.last = null;
        this.pending = null;
        return;
      }
      case 'PoolDevicesAttached': {
        // Not pool metadata: allowed while a transaction is pending (recovering it needs the new paths).
        if (!this.pool) throw conflict(e, 'the pool is not initialised');
        this.checkCurrentTx(e);
        const paths = { dataDevice: detach(b.dataDevice), metadataDevice: detach(b.metadataDevice) };
        this.last = null;
        this.pool = Object.freeze({ ...this.pool, ...paths });
        // A pending PoolResized holds its own copy of the pool, which its commit installs: give it the paths too.
        const ov = this.pending?.ov;
        if (ov?.pool) ov.pool = Object.freeze({ ...ov.pool, ...paths });
        return;
      }
      case 'Checkpoint':
        this.checkCurrentTx(e);
        return;
      case 'RepairBegan':
      case 'RepairCompleted':
      case 'RepairFailed':
        // The audit trail of a repair: the kernel changes it records are those the journal never described
        // (unknown thin ids, a foreign transaction id, stray dm devices), so the state does not change.
        if (!this.pool) throw conflict(e, 'the pool is not initialised');
        this.checkCurrentTx(e);
        return;
      default:
        return this.applyOutsideTransaction(e, b);
    }
  }

  /**
   * A namespace event (snapshots.ts): stamped with the pending transaction's txId it joins that transaction
   * (checked against the committed namespace now, applied at its commit); stamped with the committed txId it
   * applies at once.
   */
  private applyNamespace(e: EventLike): void {
    if (!this.pool) throw conflict(e, 'the pool is not initialised');
    const p = this.pending;
    if (p && e.txId === p.txId) {
      if (p.events.some((x) => NAMESPACE_EVENTS.has(x.type))) throw conflict(e, `transaction ${p.txId} already carries a namespace event`);
      const why = namespaceConflict(this.snaps, e, (h) => this.viewDevice(h) !== undefined);
      if (why !== null) throw conflict(e, why);
      this.last = null;
      p.events.push({ type: e.type, txId: e.txId, body: e.body } as JournalEvent);
      return;
    }
    this.checkCurrentTx(e);
    const why = namespaceConflict(this.snaps, e, (h) => this.devices.has(h));
    if (why !== null) throw conflict(e, why);
    applyNamespaceEvent(this.ownSnaps(), e, detach);
  }

  private ownSnaps(): VersionedMap<string, SnapshotEntry> {
    this.last = null;
    if (this.snapsOwned === null) this.snaps = this.snapsOwned = new VersionedMap(this.snaps);
    return this.snapsOwned;
  }

  private checkCurrentTx(e: EventLike): void {
    if (e.txId !== this.txId) throw conflict(e, `expected the committed txId ${this.txId}`);
  }

  /** A device for an event outside transactions: committed, and not being created or deleted by the pending one. */
  private liveDevice(e: EventLike, hash: string): Device {
    this.checkCurrentTx(e);
    const d = this.devices.get(hash);
    if (!d) throw conflict(e, `no device ${JSON.stringify(hash)}`, { hash });
    if (this.pending && assocIndex(this.pending.ov.devices, hash) >= 0) throw conflict(e, `device ${JSON.stringify(hash)} is part of pending transaction ${this.pending.txId}`, { hash });
    return d;
  }

  private applyOutsideTransaction(e: EventLike, b: Record<string, any>): void {
    if (!this.pool) throw conflict(e, 'the pool is not initialised');
    const d = this.liveDevice(e, b.hash);
    const q = (s: string) => JSON.stringify(s);
    switch (e.type) {
      case 'DeviceActivated': {
        if (b.deviceId !== d.deviceId) throw conflict(e, `device ${q(d.hash)} has id ${d.deviceId}, not ${b.deviceId}`);
        if (b.size !== d.size) throw conflict(e, `device ${q(d.hash)} has size ${d.size}, not ${b.size}`);
        if (d.deletionDeferred) throw conflict(e, `device ${q(d.hash)} awaits deferred deletion`);
        // Activating a device whose removal was deferred cancels the deferred removal.
        if (d.active && !d.removalDeferred) throw conflict(e, `device ${q(d.hash)} is already active`);
        return this.setDevice(d, { ...d, active: true, dmName: detach(b.name), removalDeferred: false });
      }
      case 'DeviceDeactivated': {
        if (!d.active) throw conflict(e, `device ${q(d.hash)} is not active`);
        if (d.mounts.length) throw conflict(e, `device ${q(d.hash)} is mounted at ${d.mounts[0]!.path}`);
        if (b.deferred) {
          if (d.removalDeferred) throw conflict(e, `removal of ${q(d.hash)} is already deferred`);
          return this.setDevice(d, { ...d, removalDeferred: true });
        }
        return this.setDevice(d, { ...d, active: false, dmName: null, removalDeferred: false });
      }
      case 'DeviceMounted': {
        if (!d.active || d.removalDeferred) throw conflict(e, `device ${q(d.hash)} is not active`);
        if (d.deletionDeferred) throw conflict(e, `device ${q(d.hash)} awaits deferred deletion`);
        if (d.mounts.some((m) => m.path === b.path)) throw conflict(e, `device ${q(d.hash)} is already mounted at ${b.path}`);
        const mounts = [...d.mounts, { path: detach(b.path), options: b.options === undefined ? null : detach(b.options) }]
          .sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
        return this.setDevice(d, { ...d, mounts: Object.freeze(mounts) });
      }
      case 'DeviceUnmounted': {
        if (!d.mounts.some((m) => m.path === b.path)) throw conflict(e, `device ${q(d.hash)} is not mounted at ${b.path}`);
        const mounts = d.mounts.filter((m) => m.path !== b.path);
        return this.setDevice(d, { ...d, mounts: mounts.length ? Object.freeze(mounts) : EMPTY_MOUNTS });
      }
      case 'DeviceResized': {
        if (d.deletionDeferred) throw conflict(e, `device ${q(d.hash)} awaits deferred deletion`);
        if (b.size <= d.size) throw conflict(e, `size ${b.size} does not grow device ${q(d.hash)} (size ${d.size})`);
        return this.setDevice(d, { ...d, size: b.size });
      }
      case 'DeletionDeferred': {
        if (b.deviceId !== d.deviceId) throw conflict(e, `device ${q(d.hash)} has id ${d.deviceId}, not ${b.deviceId}`);
        if (d.deletionDeferred) throw conflict(e, `device ${q(d.hash)} already awaits deferred deletion`);
        return this.setDevice(d, { ...d, deletionDeferred: true });
      }
      default:
        throw conflict(e, 'unknown event type');
    }
  }

  private applyInTransaction(e: EventLike, b: Record<string, any>): void {
    const p = this.pending;
    if (!p) throw conflict(e, 'pool-metadata events must follow a TransactionBegan');
    if (e.txId !== p.txId) throw conflict(e, `the pending transaction is ${p.txId}`);
    const ov = p.ov;
    const q = (s: string) => JSON.stringify(s);
    const newId = (id: number): void => {
      if (!Number.isSafeInteger(id) || id < 0 || id > MAX_DEVICE_ID) throw conflict(e, `device id ${id} is not 24-bit`);
      const owner = this.viewIdOwner(id);
      if (owner !== undefined) throw conflict(e, `device id ${id} belongs to ${q(owner)}`);
    };
    const newHash = (h: string): void => {
      if (this.viewDevice(h)) throw conflict(e, `device ${q(h)} exists`);
    };
    const create = (d: Device): void => {
      assocSet(ov.devices, d.hash, d);
      assocSet(ov.ids, d.deviceId, d.hash);
      // The cursor moves at intent time and stays on rollback (see the header).
      this.nextDeviceId = d.deviceId;
    };
    switch (e.type) {
      case 'BaseImageCreated': {
        if (this.viewBase()) throw conflict(e, 'the base image exists');
        newHash(b.hash);
        newId(b.deviceId);
        if (b.fs !== 'ext4' && b.fs !== 'xfs') throw conflict(e, `filesystem ${q(b.fs)} is not ext4 or xfs`);
        this.last = null;
        create(device(b.hash, b.deviceId, b.size, null, p.txId, true));
        ov.base = Object.freeze({ hash: detach(b.hash), deviceId: b.deviceId, fs: detach(b.fs), uuid: detach(b.uuid) });
        ov.baseSet = true;
        break;
      }
      case 'DeviceCreated': {
        newHash(b.hash);
        newId(b.deviceId);
        this.last = null;
        create(device(b.hash, b.deviceId, b.size, null, p.txId, false));
        break;
      }
      case 'SnapshotCreated': {
        const parent = this.viewDevice(b.parentHash);
        if (!parent) throw conflict(e, `no parent device ${q(b.parentHash)}`);
        if (parent.deletionDeferred) throw conflict(e, `parent ${q(parent.hash)} awaits deferred deletion`);
        if (parent.deviceId !== b.parentDeviceId) throw conflict(e, `parent ${q(parent.hash)} has id ${parent.deviceId}, not ${b.parentDeviceId}`);
        if (b.size < parent.size) throw conflict(e, `size ${b.size} is smaller than the parent's ${parent.size}`);
        newHash(b.hash);
        newId(b.deviceId);
        this.last = null;
        create(device(b.hash, b.deviceId, b.size, parent.hash, p.txId, parent.initialised));
        this.childDelta(parent.hash, 1);
        break;
      }
      case 'DeviceDeleted': {
        const d = this.viewDevice(b.hash);
        if (!d) throw conflict(e, `no device ${q(b.hash)}`);
        if (d.deviceId !== b.deviceId) throw conflict(e, `device ${q(d.hash)} has id ${d.deviceId}, not ${b.deviceId}`);
        if (d.active) throw conflict(e, `device ${q(d.hash)} is active`);
        if (d.mounts.length) throw conflict(e, `device ${q(d.hash)} is mounted`);
        const n = this.viewChildren(d.hash);
        if (n > 0) throw conflict(e, `device ${q(d.hash)} has ${n} snapshot(s)`);
        const base = this.viewBase();
        if (base && base.hash === d.hash) throw conflict(e, 'the base image is never deleted');
        this.last = null;
        assocSet(ov.devices, d.hash, null);
        assocSet(ov.ids, d.deviceId, null);
        if (d.parentHash !== null) this.childDelta(d.parentHash, -1);
        break;
      }
      case 'PoolResized': {
        const pool = this.viewPool()!;
        if (b.dataSize < pool.dataSize) throw conflict(e, `data size ${b.dataSize} is smaller than ${pool.dataSize}`);
        const metadataSize: number = b.metadataSize ?? pool.metadataSize;
        if (metadataSize < pool.metadataSize) throw conflict(e, `metadata size ${metadataSize} is smaller than ${pool.metadataSize}`);
        this.last = null;
        ov.pool = Object.freeze({ ...pool, dataSize: b.dataSize, metadataSize });
        break;
      }
    }
    p.events.push({ type: e.type, txId: e.txId, body: e.body } as JournalEvent);
  }

  private commit(p: WorkPending): void {
    const ov = p.ov;
    const o = this.own();
    for (let i = 0; i < ov.devices.length; i += 2) {
      const h = ov.devices[i] as string;
      const d = ov.devices[i + 1] as Device | null;
      if (d === null) {
        o.devices.delete(h);
        if (this.deferred.delete(h)) this.deferredSorted = null;
      } else this.setDevice(o.devices.get(h), d);
    }
    for (let i = 0; i < ov.ids.length; i += 2) {
      const id = ov.ids[i] as number;
      const owner = ov.ids[i + 1] as string | null;
      if (owner === null) o.ids.delete(id); else o.ids.set(id, owner);
    }
    for (let i = 0; i < ov.childDelta.length; i += 2) {
      const h = ov.childDelta[i] as string;
      const n = (o.children.get(h) ?? 0) + (ov.childDelta[i + 1] as number);
      if (n === 0) o.children.delete(h); else o.children.set(h, n);
    }
    if (ov.pool) this.pool = ov.pool;
    if (ov.baseSet) this.base = ov.base;
    for (const e of p.events) {
      if (!NAMESPACE_EVENTS.has(e.type)) continue;
      applyNamespaceEvent(this.ownSnaps(), e, detach);
    }
    this.txId = p.txId;
  }
}

/**
 * A copy of `s` that shares no storage with the string it came from. Decoders (msgpackr) hand out
 * substrings of one large string per chunk; a state that kept those would pin every chunk it ever read
 * (measured: ~3 KiB per device instead of ~0.3). Strings the state keeps go through here.
 */
function detach(s: string): string {
  // Concatenation then slice makes V8 flatten into a fresh string of s's own length.
  return s.length < 13 ? s : (s + ' ').slice(0, -1);
}

function device(hash: string, deviceId: number, size: number, parentHash: string | null, txId: number, initialised: boolean): Device {
  return Object.freeze({
    hash: detach(hash), deviceId, size, parentHash, txId, initialised,
    active: false, dmName: null, removalDeferred: false, mounts: EMPTY_MOUNTS, deletionDeferred: false,
  });
}

/** The pure reference: the state after `event`. Throws ERR_EVENT_CONFLICT (and `state` is untouched). */
export function evolve(state: State, event: EventLike): State {
  const w = Work.from(state);
  w.apply(event);
  return w.snapshot();
}

/**
 * The same semantics as evolve, applied in place: O(1) per event. `state` is an immutable snapshot, O(1) to
 * take and to keep while later events apply (versioned-map.ts). A conflicting event throws
 * ERR_EVENT_CONFLICT and leaves the projection as it was.
 */
export class Projection {
  private w: Work;
  private applied = 0;
  constructor(from: State = initialState) {
    this.w = Work.from(from);
  }
  /** Applies one event (a JournalEvent or a journal record). */
  apply(event: EventLike): void {
    // Checks run before any write, so a throw leaves the projection untouched.
    this.w.apply(event);
    this.applied++;
  }
  applyAll(events: Iterable<EventLike>): void {
    for (const e of events) this.apply(e);
  }
  get state(): State {
    return this.w.snapshot();
  }
  /**
   * Reads the current state through `read` without taking a snapshot (both are O(1); this allocates
   * nothing). `read` must not keep the State it is given (e.g. decide).
   */
  peek<T>(read: (s: State) => T): T {
    return read(this.w.view());
  }
  get eventsApplied(): number {
    return this.applied;
  }
}

/** Replays events from `from` (default: the initial state) with a Projection. */
export function replay(events: Iterable<EventLike>, from: State = initialState): State {
  const p = new Projection(from);
  p.applyAll(events);
  return p.state;
}

// ------------------------------------------------------------------------------------------------
// Canonical hash and checkpoint form.

function sortedEntries(m: Readonly<Record<string, unknown>>): [string, unknown][] {
  return Object.keys(m).sort().map((k) => {
    const v = m[k];
    return [k, v !== null && typeof v === 'object' && !Array.isArray(v) ? sortedEntries(v as Record<string, unknown>) : v];
  });
}

function poolRow(p: PoolInfo | null): unknown {
  return p && [p.poolName, p.devicePrefix, p.dataDevice, p.metadataDevice, p.loopback, p.dataSize, p.metadataSize, p.blockSize, sortedEntries(p.options)];
}

function deviceRow(d: Device): unknown {
  return [d.hash, d.deviceId, d.size, d.parentHash, d.txId, d.initialised, d.active, d.dmName, d.removalDeferred,
    d.mounts.map((m) => [m.path, m.options]), d.deletionDeferred];
}

/** The devices in hash order (hashes are unique keys, so the order is total). */
function byHash(devices: ReadonlyMap<string, Device>): Device[] {
  return [...devices.values()].sort((x, y) => (x.hash < y.hash ? -1 : x.hash > y.hash ? 1 : 0));
}

/**
 * The canonical state hash, lowercase hex SHA-256. It covers every field of the state — pool, txId, the id
 * cursor, base, every device (in hash order; each field in a fixed order), the pending transaction and its
 * events (bodies by sorted key) — and nothing about how the state was built: map insertion order and object
 * key order do not matter. The indexes (deviceIds, childCounts, deferredDeletions) are functions of the
 * devices and are not hashed separately.
 */
export function stateHash(s: State): string {
  const h = createHash('sha256');
  h.update('thinjournal-model-state/1\n');
  h.update(JSON.stringify(['pool', poolRow(s.pool)]) + '\n');
  h.update(JSON.stringify(['tx', s.txId, s.nextDeviceId]) + '\n');
  h.update(JSON.stringify(['base', s.base && [s.base.hash, s.base.deviceId, s.base.fs, s.base.uuid]]) + '\n');
  // Lines are hashed in batches: one update per device costs more than the JSON of its row.
  let batch = '';
  let n = 0;
  for (const d of byHash(s.devices)) {
    batch += JSON.stringify(['dev', deviceRow(d)]) + '\n';
    if (++n % 512 === 0) { h.update(batch); batch = ''; }
  }
  h.update(batch);
  const p = s.pending;
  h.update(JSON.stringify(['pending', p && [p.txId, p.op, p.hash, p.events.map((e) => [e.type, e.txId, sortedEntries(e.body as Record<string, unknown>)])]]) + '\n');
  // The namespace is hashed only when it has entries: a state without snapshots hashes as it always has, so
  // checkpoints stored before the namespace existed still verify.
  for (const k of [...s.snapshots.keys()].sort()) h.update(JSON.stringify(['snap', snapshotRow(s.snapshots.get(k)!)]) + '\n');
  return h.digest('hex');
}

/** Checkpoint form: plain data (msgpack/JSON-safe), devices as an array in hash order. */
export interface PlainState {
  readonly v: 1;
  readonly pool: PoolInfo | null;
  readonly txId: number;
  readonly nextDeviceId: number;
  readonly base: BaseInfo | null;
  readonly devices: readonly Device[];
  readonly pending: PendingTransaction | null;
  /** the namespace as rows (snapshots.ts snapshotRow) in key order; absent when empty. */
  readonly snapshots?: readonly unknown[];
}

export function toPlain(s: State): PlainState {
  return {
    ...(s.snapshots.size ? { snapshots: [...s.snapshots.keys()].sort().map((k) => snapshotRow(s.snapshots.get(k)!)) } : {}),
    v: 1, pool: s.pool, txId: s.txId, nextDeviceId: s.nextDeviceId, base: s.base,
    devices: byHash(s.devices),
    pending: s.pending && { txId: s.pending.txId, op: s.pending.op, hash: s.pending.hash, events: s.pending.events.map((e) => ({ type: e.type, txId: e.txId, body: e.body }) as JournalEvent) },
  };
}

/**
 * Rebuilds a State from its checkpoint form (e.g. as decoded from a stored checkpoint), rebuilding the
 * indexes and checking their invariants. Throws ERR_CHECKPOINT_INVALID when the data is not a state.
 */
export function fromPlain(x: unknown): State {
  const invalid = (why: string) => new ThinjournalError('ERR_CHECKPOINT_INVALID', `checkpoint state: ${why}`);
  const o = x as Record<string, any>;
  if (typeof o !== 'object' || o === null || o.v !== 1 || !Array.isArray(o.devices)) throw invalid('not a v1 model state');
  if (!Number.isSafeInteger(o.txId) || !Number.isSafeInteger(o.nextDeviceId)) throw invalid('txId / nextDeviceId are not integers');
  const devices = new Map<string, Device>();
  const ids = new Map<number, string>();
  const children = new Map<string, number>();
  const deferred: string[] = [];
  for (const r of o.devices as Record<string, any>[]) {
    if (typeof r?.hash !== 'string' || !Number.isSafeInteger(r.deviceId) || r.deviceId < 0 || r.deviceId > MAX_DEVICE_ID || !Number.isSafeInteger(r.size)) throw invalid('malformed device');
    if (devices.has(r.hash)) throw invalid(`device ${JSON.stringify(r.hash)} twice`);
    if (ids.has(r.deviceId)) throw invalid(`device id ${r.deviceId} twice`);
    const mounts: MountPoint[] = (Array.isArray(r.mounts) ? r.mounts : []).map((m: any) => Object.freeze({ path: String(m.path), options: m.options ?? null }));
    const d: Device = Object.freeze({
      hash: r.hash, deviceId: r.deviceId, size: r.size, parentHash: r.parentHash ?? null, txId: r.txId, initialised: !!r.initialised,
      active: !!r.active, dmName: r.dmName ?? null, removalDeferred: !!r.removalDeferred,
      mounts: mounts.length ? Object.freeze(mounts) : EMPTY_MOUNTS, deletionDeferred: !!r.deletionDeferred,
    });
    devices.set(d.hash, d);
    ids.set(d.deviceId, d.hash);
    if (d.parentHash !== null) children.set(d.parentHash, (children.get(d.parentHash) ?? 0) + 1);
    if (d.deletionDeferred) deferred.push(d.hash);
  }
  for (const d of devices.values()) if (d.parentHash !== null && !devices.has(d.parentHash)) throw invalid(`parent of ${JSON.stringify(d.hash)} missing`);
  const pool = o.pool ? Object.freeze({ ...o.pool, options: Object.freeze({ ...(o.pool.options ?? {}) }) }) as PoolInfo : null;
  const base = o.base ? Object.freeze({ ...o.base }) as BaseInfo : null;
  const snapshots = new Map<string, SnapshotEntry>();
  if (o.snapshots !== undefined) {
    if (!Array.isArray(o.snapshots)) throw invalid('snapshots is not an array');
    for (const r of o.snapshots) {
      const x = snapshotFromRow(r);
      if (!x) throw invalid('malformed snapshot');
      if (snapshots.has(x.key)) throw invalid(`snapshot ${JSON.stringify(x.key)} twice`);
      if (!devices.has(x.hash)) throw invalid(`device of snapshot ${JSON.stringify(x.key)} missing`);
      snapshots.set(x.key, x);
    }
    for (const x of snapshots.values()) if (x.parent !== null && snapshots.get(x.parent)?.kind !== 'committed') throw invalid(`parent of snapshot ${JSON.stringify(x.key)} is not a committed snapshot`);
  }
  const committed: State = Object.freeze({
    pool, txId: o.txId, nextDeviceId: o.nextDeviceId, base, devices, deviceIds: ids, childCounts: children,
    deferredDeletions: Object.freeze(deferred.sort()), pending: null, snapshots,
  });
  if (!o.pending) return committed;
  // Re-run the pending transaction's events over the committed state: it rebuilds (and re-checks) the overlay.
  try {
    const w = Work.from(committed);
    w.apply({ type: 'TransactionBegan', txId: o.pending.txId, body: o.pending.hash === null || o.pending.hash === undefined ? { op: o.pending.op } : { op: o.pending.op, hash: o.pending.hash } });
    const cursor = o.nextDeviceId;
    for (const e of o.pending.events) w.apply(e);
    w.nextDeviceId = cursor;
    return w.snapshot();
  } catch (cause) {
    throw new ThinjournalError('ERR_CHECKPOINT_INVALID', `checkpoint state: pending transaction does not apply: ${(cause as Error).message}`, { cause });
  }
}
