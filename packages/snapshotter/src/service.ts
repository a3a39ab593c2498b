/**
 * The snapshotter's semantics over a DeviceSet, without gRPC: containerd's snapshots.Snapshotter (Prepare,
 * View, Mounts, Commit, Remove, Stat, Update, Walk, Usage, Cleanup) on the model's snapshot namespace.
 *
 * Every change is one model command run by the Engine, so it is journaled before the kernel is touched and
 * recovered after a crash: Prepare/View and Remove are pool transactions that carry their namespace event
 * (model snapshots.ts); Commit and Update are namespace events. Around them are activation steps the
 * journal records too: a new snapshot's device is activated so that Mounts can name it, a committed one is
 * deactivated when nothing holds it open, a removed one is deactivated before it is deleted.
 *
 * Calls that change anything run one at a time (a queue here): each is a few steps (observe the kernel,
 * decide, activate), and the steps of two calls must not interleave. Reads run at once on the current state.
 * A malformed or refused call throws a coded error before any step, so nothing is journaled for it.
 */
import { ThinjournalError } from '@thinjournal/spec';
import { checkLabels, checkSnapshotKey, decide, getSnapshot, type SnapshotEntry } from '@thinjournal/model';
import type { DeviceSet } from '@thinjournal/driver';
import { compileFilters } from './filters.js';

export interface Mount {
  readonly type: string;
  readonly source: string;
  readonly options: readonly string[];
}

export interface SnapshotInfo {
  readonly name: string;
  readonly parent: string;
  readonly kind: 'active' | 'view' | 'committed';
  /** microseconds since the Unix epoch */
  readonly created: number;
  readonly updated: number;
  readonly labels: Readonly<Record<string, string>>;
}

export interface Usage {
  /** bytes the snapshot's thin device has mapped in the pool */
  readonly size: number;
  readonly inodes: number;
}

const SECTOR = 512;

function invalid(message: string): ThinjournalError {
  return new ThinjournalError('ERR_SNAPSHOT_INVALID', message);
}

/** Microseconds since the epoch, strictly increasing within the process (sub-millisecond, as containerd needs). */
function clock(): () => number {
  let last = 0;
  return () => {
    const now = Math.floor((performance.timeOrigin + performance.now()) * 1000);
    last = Math.max(last + 1, now);
    return last;
  };
}

export function infoOf(e: SnapshotEntry): SnapshotInfo {
  return { name: e.key, parent: e.parent ?? '', kind: e.kind, created: e.created, updated: e.updated, labels: e.labels };
}

export class SnapshotService {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly now = clock();

  constructor(readonly ds: DeviceSet) {}

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  /** Resolves when every queued change has finished (for a drain at shutdown). */
  idle(): Promise<void> {
    return this.queue.then(() => {}, () => {});
  }

  private entry(key: string): SnapshotEntry {
    return getSnapshot(this.ds.modelState, checkSnapshotKey(key));
  }

  prepare(key: string, parent: string, labels: Readonly<Record<string, string>> = {}): Promise<Mount[]> {
    return this.create('active', key, parent, labels);
  }

  view(key: string, parent: string, labels: Readonly<Record<string, string>> = {}): Promise<Mount[]> {
    return this.create('view', key, parent, labels);
  }

  private create(kind: 'active' | 'view', key: string, parent: string, labels: Readonly<Record<string, string>>): Promise<Mount[]> {
    return this.serial(async () => {
      const usage = await this.ds.poolUsage();
      await this.ds.execute({
        type: 'snapshotPrepare', key, kind, ...(parent !== '' ? { parent } : {}), labels, time: this.now(),
        usage, minFreeSpacePercent: this.ds.options.minFreeSpacePercent,
      }, kind === 'active' ? 'Prepare' : 'View');
      const e = this.entry(key);
      await this.ds.execute({ type: 'activateDevice', hash: e.hash }, 'mounts of a new snapshot');
      return this.mountsOf(e);
    });
  }

  /** Mounts of an active or view snapshot; its device is activated (journaled) if it is not active. */
  mounts(key: string): Promise<Mount[]> {
    const e = this.entry(key);
    if (e.kind === 'committed') throw new ThinjournalError('ERR_SNAPSHOT_NOT_ACTIVE', `snapshot ${JSON.stringify(key)} is committed: only active and view snapshots have mounts`, { key });
    const d = this.ds.modelState.devices.get(e.hash);
    if (d?.active && !d.removalDeferred) return Promise.resolve(this.mountsOf(e));
    return this.serial(async () => {
      const cur = this.entry(key);
      await this.ds.execute({ type: 'activateDevice', hash: cur.hash }, 'Mounts');
      return this.mountsOf(cur);
    });
  }

  private mountsOf(e: SnapshotEntry): Mount[] {
    const s = this.ds.modelState;
    const d = s.devices.get(e.hash)!;
    const fs = s.base?.fs ?? 'ext4';
    const options: string[] = [];
    if (e.kind === 'view') options.push('ro');
    // Every snapshot's filesystem is a copy of the base image's, UUID included: xfs refuses a second mount of
    // one UUID without nouuid.
    if (fs === 'xfs') options.push('nouuid');
    return [{ type: fs, source: this.ds.backend.devicePath(d.dmName!), options }];
  }

  commit(name: string, key: string, labels: Readonly<Record<string, string>> = {}): Promise<void> {
    return this.serial(async () => {
      await this.ds.execute({ type: 'snapshotCommit', key, name, labels, time: this.now() }, 'Commit');
      // A committed snapshot is only ever an origin: its device goes inactive once nothing holds it open.
      const e = this.entry(name);
      const d = this.ds.modelState.devices.get(e.hash);
      if (d?.active && d.mounts.length === 0 && !d.removalDeferred && (await this.ds.openCount(e.hash)) === 0) {
        await this.ds.execute({ type: 'deactivateDevice', hash: e.hash, openCount: 0 }, 'committed').catch(() => {});
      }
    });
  }

  remove(key: string): Promise<void> {
    return this.serial(async () => {
      const e = this.entry(key);
      // The refusals (children, a pending transaction) come before the device is touched.
      decide(this.ds.modelState, { type: 'snapshotRemove', key, busy: false });
      const d = this.ds.modelState.devices.get(e.hash);
      if (d?.active && d.mounts.length === 0 && !d.removalDeferred && (await this.ds.openCount(e.hash)) === 0) {
        await this.ds.execute({ type: 'deactivateDevice', hash: e.hash, openCount: 0 }, 'Remove');
      }
      const now = this.ds.modelState.devices.get(e.hash);
      const busy = now?.active === true || (await this.ds.openCount(e.hash)) > 0;
      await this.ds.execute({ type: 'snapshotRemove', key, busy }, 'Remove');
    });
  }

  stat(key: string): SnapshotInfo {
    return infoOf(this.entry(key));
  }

  /**
   * containerd's Update: `paths` empty → the labels are replaced by `info.labels`; `labels` → likewise;
   * `labels.<key>` → that label is set from `info.labels`, or removed when absent there. Any other path is
   * ERR_SNAPSHOT_INVALID. Name, kind, parent and times in `info` are not updatable and are ignored.
   */
  update(name: string, labels: Readonly<Record<string, string>>, paths: readonly string[]): Promise<SnapshotInfo> {
    const given = checkLabels(labels);
    for (const p of paths) {
      if (p !== 'labels' && !(p.startsWith('labels.') && p.length > 'labels.'.length)) throw invalid(`cannot update field path ${JSON.stringify(p)}: only "labels" and "labels.<key>" can change`);
    }
    return this.serial(async () => {
      const e = this.entry(name);
      let next: Record<string, string>;
      if (paths.length === 0 || paths.includes('labels')) next = { ...given };
      else {
        next = { ...e.labels };
        for (const p of paths) {
          const k = p.slice('labels.'.length);
          if (Object.hasOwn(given, k)) next[k] = given[k]!; else delete next[k];
        }
      }
      await this.ds.execute({ type: 'snapshotUpdate', key: name, labels: next, time: this.now() }, 'Update');
      return infoOf(this.entry(name));
    });
  }

  /** Walk: the snapshots matching containerd's filters (any filter; all selectors of one), in key order. */
  list(filters: readonly string[] = []): SnapshotInfo[] {
    const match = compileFilters(filters);
    const s = this.ds.modelState;
    return [...s.snapshots.keys()].sort().map((k) => infoOf(s.snapshots.get(k)!)).filter((i) => match(i));
  }

  /**
   * Usage: the thin device's mapped sectors × 512, as dm-thin reports them (blocks the snapshot shares with its
   * parent count for both: thin-pool status does not tell shared from exclusive blocks). Inodes: 0 (not
   * counted; it would need the filesystem mounted). An inactive device is activated for the read.
   */
  usage(key: string): Promise<Usage> {
    this.entry(key);
    return this.serial(async () => {
      const st = await this.ds.getDeviceStatus(this.entry(key).hash);
      return { size: st.mappedSectors * SECTOR, inodes: 0 };
    });
  }

  /** Cleanup: deletes the devices Remove had to leave (busy then), and records finished deferred removals. */
  cleanup(): Promise<void> {
    return this.serial(async () => { await this.ds.cleanupDeferredNow(); });
  }
}
