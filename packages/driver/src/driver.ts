/**
 * Driver: Docker's devmapper graph driver (Init, Create, Remove, Get, Put, Exists, Status, GetMetadata,
 * Cleanup, String) over a DeviceSet. Layers live as thin snapshots; `get` mounts a layer at
 * <home>/mnt/<id> and returns its rootfs directory, reference-counted so that a layer got twice is
 * unmounted by the second `put`, not the first.
 */
import { chownSync, existsSync, mkdirSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ThinjournalError } from '@thinjournal/spec';
import { BASE_HASH, checkHash } from '@thinjournal/model';
import { DeviceSet, type DeviceSetOptions, type Status } from './device-set.js';
import { ensureDir } from './layout.js';

/** idtools.IDMap: container ids [containerId, containerId+size) map to host ids from hostId. */
export interface IdMap {
  readonly containerId: number;
  readonly hostId: number;
  readonly size: number;
}

export interface IdMaps {
  readonly uidMaps?: readonly IdMap[];
  readonly gidMaps?: readonly IdMap[];
}

function rootOf(maps: readonly IdMap[] | undefined, what: string): number {
  if (maps === undefined || maps.length === 0) return 0;
  if (!Array.isArray(maps)) throw new TypeError(`${what} must be an array of {containerId, hostId, size}`);
  for (const m of maps) {
    if (!m || ![m.containerId, m.hostId, m.size].every((n) => Number.isSafeInteger(n) && n >= 0) || m.size === 0) {
      throw new TypeError(`${what}: ${JSON.stringify(m)} is not an {containerId, hostId, size} of non-negative integers`);
    }
  }
  const hit = maps.find((m) => m.containerId === 0);
  if (!hit) throw new ThinjournalError('ERR_BAD_OPTION', `${what} do not map container id 0 (root)`, { option: what, text: JSON.stringify(maps) });
  return hit.hostId;
}

/** A per-key queue: calls for the same id run one after another. */
class KeyedQueue {
  private tails = new Map<string, Promise<unknown>>();
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => {});
    this.tails.set(key, tail);
    void tail.then(() => { if (this.tails.get(key) === tail) this.tails.delete(key); });
    return next;
  }
}

export class Driver {
  private readonly refs = new Map<string, number>();
  private readonly queue = new KeyedQueue();

  private constructor(readonly home: string, readonly deviceSet: DeviceSet, private readonly rootUid: number, private readonly rootGid: number) {}

  /** Docker's Init(home, options, uidMaps, gidMaps). */
  static async init(home: string, options: readonly string[] = [], idMaps: IdMaps = {}, opts: DeviceSetOptions = {}): Promise<Driver> {
    const uid = rootOf(idMaps.uidMaps, 'uidMaps');
    const gid = rootOf(idMaps.gidMaps, 'gidMaps');
    const ds = await DeviceSet.open(home, options, opts);
    const d = new Driver(ds.root, ds, uid, gid);
    // Layers the journal has mounted at their mount point (recovery re-mounted them after a crash) hold one
    // reference, as Docker's RefCounter counts a mount it finds: the next put unmounts them.
    for (const id of ds.list()) {
      if (id !== BASE_HASH && ds.deviceInfo(id)!.mounts.some((m) => m.path === d.mountPoint(id))) d.refs.set(id, 1);
    }
    return d;
  }

  toString(): string {
    return 'devicemapper';
  }

  mountPoint(id: string): string {
    return path.join(this.deviceSet.layout.mnt, id);
  }

  private checkId(id: string): string {
    // "" is the base image, which is not a layer: Docker's layer ids are never empty.
    return checkHash(id, { allowBase: false, what: 'layer id' });
  }

  /** Docker's Create(id, parent, mountLabel, storageOpt): a snapshot of `parent` ("" = the base image). */
  async create(id: string, parent: string, mountLabel = '', storageOpt: Readonly<Record<string, string>> = {}): Promise<void> {
    this.checkId(id);
    checkHash(parent, { allowBase: true, what: 'parent id' });
    if (typeof mountLabel !== 'string') throw new TypeError('mountLabel must be a string');
    const size = parseStorageOpt(storageOpt);
    await this.deviceSet.addDevice(id, parent === '' ? BASE_HASH : parent, size === undefined ? {} : { size });
  }

  /** Docker's CreateReadWrite: the same for devicemapper. */
  createReadWrite(id: string, parent: string, mountLabel = '', storageOpt: Readonly<Record<string, string>> = {}): Promise<void> {
    return this.create(id, parent, mountLabel, storageOpt);
  }

  /** Docker's Remove(id): deletes the device (deferred when busy and enabled) and its mount point; absent ids are fine. */
  remove(id: string): Promise<void> {
    this.checkId(id);
    return this.queue.run(id, async () => {
      if (!this.deviceSet.hasDevice(id)) return;
      if ((this.refs.get(id) ?? 0) > 0) throw new ThinjournalError('ERR_DEVICE_BUSY', `layer ${JSON.stringify(id)} is mounted (${this.refs.get(id)} reference(s)); put it first`, { hash: id });
      await this.deviceSet.deleteDevice(id, false);
      const mp = this.mountPoint(id);
      if (existsSync(mp)) rmdirSync(mp);
    });
  }

  /**
   * Docker's Get(id, mountLabel): mounts the layer (first reference) and returns <home>/mnt/<id>/rootfs.
   * A second `get` of a mounted layer only counts a reference.
   */
  get(id: string, mountLabel = ''): Promise<string> {
    this.checkId(id);
    return this.queue.run(id, async () => {
      const mp = this.mountPoint(id);
      const rootfs = path.join(mp, 'rootfs');
      const n = this.refs.get(id) ?? 0;
      if (n > 0) {
        this.refs.set(id, n + 1);
        return rootfs;
      }
      ensureDir(this.deviceSet.backend, mp);
      if (this.rootUid !== 0 || this.rootGid !== 0) chownSync(mp, this.rootUid, this.rootGid);
      await this.deviceSet.mountDevice(id, mp, mountLabel);
      try {
        if (this.deviceSet.backend.supports.hostMounts) {
          // Docker: the layer's rootfs directory and an "id" file, made on first mount (in the layer's own fs).
          if (!existsSync(rootfs)) {
            mkdirSync(rootfs, { mode: 0o755 });
            if (this.rootUid !== 0 || this.rootGid !== 0) chownSync(rootfs, this.rootUid, this.rootGid);
          }
          const idFile = path.join(mp, 'id');
          if (!existsSync(idFile)) writeFileSync(idFile, id, { mode: 0o600 });
        }
      } catch (err) {
        // Docker: a get that fails after mounting unmounts again; no reference is taken.
        await this.deviceSet.unmountDevice(id, mp).catch(() => {});
        throw err;
      }
      this.refs.set(id, 1);
      return rootfs;
    });
  }

  /** Docker's Put(id): drops a reference; the last one unmounts (and deactivates) the layer. */
  put(id: string): Promise<void> {
    this.checkId(id);
    return this.queue.run(id, async () => {
      const n = this.refs.get(id) ?? 0;
      if (n === 0) throw new ThinjournalError('ERR_NOT_MOUNTED', `layer ${JSON.stringify(id)} is not mounted by this driver`, { hash: id });
      if (n > 1) {
        this.refs.set(id, n - 1);
        return;
      }
      const mp = this.mountPoint(id);
      try {
        await this.deviceSet.unmountDevice(id, mp);
      } catch (err) {
        // Unmounted, but the deactivation after it was refused (still open, deferred removal off): the
        // reference went with the mount.
        if (!this.deviceSet.deviceInfo(id)?.mounts.some((m) => m.path === mp)) this.refs.delete(id);
        throw err;
      }
      this.refs.delete(id);
      if (existsSync(mp)) rmdirSync(mp);
    });
  }

  /** References `get` holds on a layer (0 when not mounted by this driver). */
  references(id: string): number {
    return this.refs.get(id) ?? 0;
  }

  /** Docker's Exists(id). */
  exists(id: string): boolean {
    return this.deviceSet.hasDevice(id);
  }

  /** Docker's Status(): the same key/value pairs `docker info` prints for devicemapper. */
  async status(): Promise<[string, string][]> {
    return statusPairs(await this.deviceSet.status(), this.deviceSet);
  }

  /** Docker's GetMetadata(id): DeviceId, DeviceSize, DeviceName. */
  getMetadata(id: string): Record<string, string> {
    this.checkId(id);
    const d = this.deviceSet.deviceInfo(id);
    if (!d || d.deletionDeferred) throw new ThinjournalError('ERR_DEVICE_NOT_FOUND', `unknown layer ${JSON.stringify(id)}`, { hash: id });
    return { DeviceId: String(d.deviceId), DeviceSize: String(d.size), DeviceName: `${this.deviceSet.devicePrefix}-${id}` };
  }

  /** Closes without touching the kernel (layers stay mounted; see DeviceSet.close). References are dropped. */
  async close(): Promise<void> {
    this.refs.clear();
    await this.deviceSet.close();
  }

  /** Docker's Cleanup(): the device set's Shutdown. */
  async cleanup(): Promise<void> {
    this.refs.clear();
    await this.deviceSet.shutdown();
  }
}

/** Docker's `size` storage option (the only one devmapper takes). */
function parseStorageOpt(opt: Readonly<Record<string, string>>): number | undefined {
  if (typeof opt !== 'object' || opt === null) throw new TypeError('storageOpt must be an object');
  let size: number | undefined;
  for (const [k, v] of Object.entries(opt)) {
    if (k.toLowerCase() !== 'size') throw new ThinjournalError('ERR_BAD_OPTION', `unknown storage option ${JSON.stringify(k)} (devicemapper takes "size")`, { option: k, text: String(v) });
    const m = /^(\d+)([kmgt]?)(i?b?)$/i.exec(String(v).trim());
    const scale: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };
    const n = m ? Number(m[1]) * scale[m[2]!.toLowerCase()]! : NaN;
    if (!Number.isSafeInteger(n) || n <= 0 || n % 512 !== 0) throw new ThinjournalError('ERR_BAD_SIZE', `storage option size=${JSON.stringify(v)} is not a positive size in whole sectors (e.g. 20G)`, { option: 'size', text: String(v) });
    size = n;
  }
  return size;
}

/** Docker's units.HumanSize: decimal units, four significant digits, no space ("65.54kB"). */
function human(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return `${Number(v.toPrecision(4))}${units[i]}`;
}

export function statusPairs(s: Status, ds: DeviceSet): [string, string][] {
  const out: [string, string][] = [
    ['Pool Name', s.poolName],
    ['Pool Blocksize', human(ds.poolBlockSize)],
    ['Base Device Size', human(s.baseDeviceSize)],
    ['Backing Filesystem', s.baseDeviceFS],
    ['Data file', s.dataFile],
    ['Metadata file', s.metadataFile],
    ['Data Space Used', human(s.data.used)],
    ['Data Space Total', human(s.data.total)],
    ['Data Space Available', human(s.data.available)],
    ['Metadata Space Used', human(s.metadata.used)],
    ['Metadata Space Total', human(s.metadata.total)],
    ['Metadata Space Available', human(s.metadata.available)],
    ['Thin Pool Minimum Free Space', human(s.minFreeSpace)],
    ['Udev Sync Supported', String(s.udevSyncSupported)],
    ['Deferred Removal Enabled', String(s.deferredRemoveEnabled)],
    ['Deferred Deletion Enabled', String(s.deferredDeleteEnabled)],
    ['Deferred Deleted Device Count', String(s.deferredDeletedDeviceCount)],
  ];
  if (s.dataLoopback) out.push(['Data loop file', s.dataLoopback]);
  if (s.metadataLoopback) out.push(['Metadata loop file', s.metadataLoopback]);
  out.push(['Library Version', 'thinjournal (no libdevmapper: raw dm ioctls)']);
  return out;
}

/** Docker's devmapper.Init. */
export function init(home: string, options: readonly string[] = [], idMaps: IdMaps = {}, opts: DeviceSetOptions = {}): Promise<Driver> {
  return Driver.init(home, options, idMaps, opts);
}
