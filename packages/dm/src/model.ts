/**
 * ModelBackend: an in-memory model of device-mapper with the thin-pool and thin targets, loop devices,
 * and just enough of filesystems (a type per device) for the reconciler's tests.
 *
 * Faithfulness. Each errno below was observed on the guest's kernel (Debian 6.1, dm 4.47) for the same
 * call (native/ probes and the conformance suite, which runs these cases on both backends):
 *   create of an existing name → EBUSY; empty name or one with '/' → EINVAL (BackendBase refuses both first);
 *   table load: missing device path → ENODEV; thin id not in the pool → ENODATA; thin on a non-pool → EINVAL;
 *   bad block size, bad/unknown feature, bad low-water-mark text, too few args, length beyond the data
 *   device, metadata = data device, more than one target with a thin-pool/thin → EINVAL; metadata device
 *   already used by another pool → EBUSY; metadata that is neither zeroed nor a pool's → ENOTBLK;
 *   messages: no such device → ENXIO; device without a live table → success and no effect (sic);
 *   sector beyond the device → EINVAL; unknown message, wrong argument count, id not a decimal < 2^24 →
 *   EINVAL; create_thin/create_snap of an existing id → EEXIST; create_snap of a missing origin →
 *   ENODATA; delete of a missing id → ENODATA; delete of an id some table holds open → EBUSY;
 *   set_transaction_id with a wrong current id → EINVAL (any new id is accepted, even a smaller one);
 *   remove of an open device → EBUSY, or with `deferred` marked and removed at the last close;
 *   suspend/resume are idempotent; a device with no table can be suspended and messaged, but resuming it
 *   once suspended is EINVAL; a pool table whose data block size differs from the existing metadata's →
 *   EINVAL.
 *
 * Crash semantics (crash()). dm-thin's pool_message() commits the metadata before the message ioctl
 * returns (drivers/md/dm-thin.c: `if (!r) (void) commit(pool);`), so every message that succeeded —
 * create_thin, create_snap, delete, set_transaction_id — survives a crash; a message that failed changed
 * nothing. What a crash loses: every dm device (tables, activations, suspend state, deferred removes),
 * every loop binding and every mount: they are kernel memory, not pool metadata. Data written to thin
 * devices after the last commit (the kernel commits on FLUSH/FUA and about once a second) would be lost
 * too; this model has no data blocks, only a filesystem type per thin, which mkfs commits (mkfs ends with
 * a flush). Two caveats of the real kernel the model does not reproduce: a commit that fails inside
 * pool_message() is ignored by the kernel (the message still reports success, the pool goes read-only or
 * fails), and a crash *during* a message ioctl may leave either the old or the new metadata — callers
 * must treat an unanswered message as "maybe applied" (the reconciler's recovery does).
 *
 * Hazards. The kernel does not refuse everything that is wrong: create_snap of an active origin that is
 * not suspended is accepted (and can corrupt the snapshot), zeroing a live pool's metadata device is
 * accepted. The model accepts them too and appends a description to `hazards`, which tests assert empty.
 *
 * Filesystems are a type and a UUID per thin (or file/disk), in its committed metadata: a snapshot shares
 * its origin's; zeroing the head of a device drops it; mkfs without a UUID derives one (see rawMkfs).
 * Loop bindings refer to the file itself, not its path: removeFile() unlinks, and findLoop() of a new
 * file at the same path finds nothing — as sysfs's " (deleted)" backing_file makes it on the kernel.
 *
 * Not modelled: used metadata/data block counts are estimates (the status line's totals are exact),
 * event numbers stay 0, targets other than thin-pool and thin are refused (EINVAL), no read-only or
 * fail pool modes, no out-of-space.
 */
import { BackendBase, type BackendCapabilities, type DeviceInfo, type DeviceListEntry, type MountOptions, type MountState, type PoolMetadata, type RemoveResult } from './backend.js';
import { kernelError } from './errors.js';
import { createHash } from 'node:crypto';
import { formatUuid, type FsGeometry, type FsType, type MkfsOptions } from './fs.js';
import { ThinjournalError } from '@thinjournal/spec';
import { MAX_THIN_ID } from './names.js';
import { formatThinPoolStatus, formatThinStatus } from './status.js';
import { MAX_DATA_BLOCK_SECTORS, METADATA_BLOCK_BYTES, MIN_DATA_BLOCK_SECTORS, type TableLine } from './tables.js';

/** A filesystem as the model knows it: its superblock's type, UUID and size (immutable; mkfs and growFs replace it). */
interface ModelFs {
  readonly type: FsType;
  readonly uuid: string;
  /** bytes, a multiple of MODEL_FS_BLOCK: mkfs fills the device, growFs grows it to the device's size. */
  readonly bytes: number;
}

/** The model's filesystems have 4 KiB blocks, in groups of 32768 (ext4's default), and no tail rules. */
const MODEL_FS_BLOCK = 4096;

/** Persistent contents of a file or disk: survives crash(). */
interface Storage {
  size: number;
  /** Pool metadata, when the device holds some. */
  meta: PoolMeta | null;
  /** Non-zero bytes that are no pool's metadata (e.g. an ext4 or junk). */
  garbage: boolean;
  fs: ModelFs | null;
}

interface ThinMeta {
  /** A snapshot shares its origin's (same type and UUID, as on the kernel). */
  fs: ModelFs | null;
  mappedSectors: number;
  highestSector: number | null;
  creationTime: number;
  snapTime: number;
}

interface PoolMeta {
  transactionId: number;
  dataBlockSectors: number;
  /** The data device's length in blocks as committed (the kernel's data space map): grows at resume, never shrinks. */
  dataBlocks: number;
  time: number;
  heldRoot: number | null;
  thins: Map<number, ThinMeta>;
}

interface BlockDev {
  kind: 'disk' | 'loop' | 'dm';
  path: string;
  major: number;
  minor: number;
  /** disk/loop: the storage behind it. */
  storage?: Storage;
  file?: string;
  readOnly?: boolean;
  /** loop: detach when the last holder goes (LOOP_CLR_FD on a held device, as 6.1 does). */
  autoclear?: boolean;
  /** loop: the size fixed at attach (or by LOOP_SET_CAPACITY); the file may have grown since. */
  capacity?: number;
}

interface PoolTarget {
  kind: 'pool';
  metaDev: BlockDev;
  dataDev: BlockDev;
  meta: PoolMeta;
  blockSectors: number;
  lwm: number;
  features: string[];
  metaBlocks: number;
}
interface ThinTarget {
  kind: 'thin';
  poolDev: BlockDev;
  id: number;
}
interface Table {
  lines: TableLine[];
  target: PoolTarget | ThinTarget | null;
  /** Block devices this table holds open (dm_get_device in the target constructor). */
  holds: BlockDev[];
  readOnly: boolean;
}
interface DmDev {
  name: string;
  uuid: string;
  minor: number;
  live: Table | null;
  inactive: Table | null;
  suspended: boolean;
  readOnly: boolean;
  deferredRemove: boolean;
}

const DM_MAJOR = 254;
const LOOP_MAJOR = 7;
const DISK_MAJOR = 8;
/** THIN_METADATA_MAX_SECTORS / 8: the largest metadata device dm-thin uses, in 4 KiB blocks. */
const MAX_METADATA_BLOCKS = 255 * (1 << 14);
/** Metadata blocks a freshly formatted pool uses; only an estimate (the kernel's depends on size). */
const BASE_METADATA_BLOCKS = 400;

function parseKstrtoull(tok: string | undefined): number | null {
  // kstrtoull(s, 10): an optional '+', decimal digits, an optional trailing newline.
  if (tok === undefined || !/^\+?\d+\n?$/.test(tok)) return null;
  const n = Number(tok.replace(/\n$/, ''));
  return Number.isSafeInteger(n) ? n : null;
}

export class ModelBackend extends BackendBase {
  readonly kind = 'model' as const;
  readonly supports: BackendCapabilities = Object.freeze({ hostPaths: false, hostMounts: false, hostEnvironment: false });
  /** Things the kernel accepts but that are wrong (see the file comment). */
  readonly hazards: string[] = [];

  // ---- persistent: survives crash() ----
  private files = new Map<string, Storage & { readOnlyFs: boolean }>();
  private disks = new Map<string, BlockDev>();
  private dirs = new Set<string>(['/', '/tmp', '/mnt']);
  /** Host files taken in by hostFileMade. */
  private hostFiles = new Set<string>();

  // ---- volatile: kernel memory, lost by crash() ----
  private dms = new Map<string, DmDev>();
  private loops = new Map<number, BlockDev>();
  private mounts = new Map<string, { dev: BlockDev; fsType: FsType; readOnly: boolean; source: string }[]>();
  /** Extra opens of a block device (tests' stand-in for a process holding /dev/dm-N open). */
  private opens = new Map<BlockDev, number>();
  private dmDevs = new Map<string, BlockDev>();
  /** UUIDs derived so far: part of the next one (see rawMkfs). */
  private derivedUuids = 0;

  // ---------------------------------------------------------------- model controls

  /** A sparse file of `bytes` (zero-filled). `readOnlyFs`: it lives on a read-only filesystem. */
  addFile(path: string, bytes: number, opts: { readOnlyFs?: boolean } = {}): void {
    this.files.set(path, { size: bytes, meta: null, garbage: false, fs: null, readOnlyFs: opts.readOnlyFs ?? false });
  }
  /**
   * Unlinks a file. A loop bound to it keeps the (now nameless) file, as the kernel does: findLoop(path)
   * no longer finds it, and a new file made at the same path is a different file.
   */
  /** The file grows to `bytes` (never shrinks), as `truncate` would; loops on it keep their capacity. */
  growFile(path: string, bytes: number): void {
    const f = this.files.get(path);
    if (!f) throw kernelError('ENOENT', 'truncate', { path });
    f.size = Math.max(f.size, bytes);
  }
  removeFile(path: string): void {
    if (!this.files.delete(path)) throw kernelError('ENOENT', 'unlink', { path });
  }
  /** Non-zero, non-metadata bytes at the start of a file (junk). */
  scribble(path: string): void {
    const f = this.files.get(path);
    if (!f) throw new Error(`model: no file ${path}`);
    f.meta = null;
    f.fs = null;
    f.garbage = true;
  }
  /** A byte-for-byte copy of a file as it is on disk now (committed pool metadata included). */
  copyFile(from: string, to: string): void {
    const f = this.files.get(from);
    if (!f) throw kernelError('ENOENT', 'open', { path: from });
    const meta = f.meta ? { ...f.meta, thins: new Map([...f.meta.thins].map(([k, v]) => [k, { ...v }])) } : null;
    this.files.set(to, { ...f, meta, readOnlyFs: false });
  }
  /** A raw disk that stays present across crash() (like /dev/sdb). */
  addDisk(path: string, bytes: number): void {
    const minor = this.disks.size * 16;
    this.disks.set(path, { kind: 'disk', path, major: DISK_MAJOR, minor, storage: { size: bytes, meta: null, garbage: false, fs: null } });
  }
  mkdir(path: string): void {
    this.dirs.add(path);
  }
  hostDirectoryMade(dir: string): void {
    this.mkdir(dir);
  }
  /** A host file joins the model at its size then, once: later calls leave the model's file as it is. */
  hostFileMade(file: string, size: number): void {
    if (this.hostFiles.has(file)) return;
    this.addFile(file, size);
    this.hostFiles.add(file);
  }
  hostFileGrown(file: string, size: number): void {
    this.growFile(file, size);
  }
  /** Holds a block device open (like a process with the node open); returns the release function. */
  hold(path: string): () => void {
    const dev = this.resolve(path);
    if (!dev) throw kernelError('ENOENT', 'open', { path });
    this.opens.set(dev, (this.opens.get(dev) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.opens.set(dev, (this.opens.get(dev) ?? 1) - 1);
      this.released(dev);
    };
  }

  /**
   * `unshare -m` while `target` is mounted: a process in a new mount namespace now holds a copy of the mount.
   * It is invisible here (`mounted`, umount), and keeps the filesystem — so its device — open after the mount
   * here is gone. The returned function ends that namespace (its last process exits).
   */
  leakMount(target: string): () => void {
    const m = this.mounts.get(target)?.at(-1);
    if (!m) throw kernelError('EINVAL', 'unshare', { path: target });
    const key = Symbol(target);
    this.leaked.set(key, m.dev);
    return () => {
      if (!this.leaked.delete(key)) return;
      this.released(m.dev);
    };
  }
  private leaked = new Map<symbol, BlockDev>();

  /**
   * A power loss: keeps what is on disk (files, disks, committed pool metadata — every message that
   * returned success) and loses everything in kernel memory (dm devices, loop bindings, mounts, opens).
   */
  crash(): void {
    this.dms.clear();
    this.dmDevs.clear();
    this.loops.clear();
    this.mounts.clear();
    this.leaked.clear();
    this.opens.clear();
  }

  // ---------------------------------------------------------------- device resolution

  private resolve(path: string): BlockDev | null {
    const mm = /^(\d+):(\d+)$/.exec(path);
    if (mm) {
      const maj = Number(mm[1]), min = Number(mm[2]);
      for (const d of this.allDevs()) if (d.major === maj && d.minor === min) return d;
      return null;
    }
    const mapper = /^\/dev\/mapper\/(.+)$/.exec(path);
    if (mapper) return this.dmDevs.get(mapper[1]!) ?? null;
    const dmN = /^\/dev\/dm-(\d+)$/.exec(path);
    if (dmN) return this.resolve(`${DM_MAJOR}:${dmN[1]}`);
    const loop = /^\/dev\/loop(\d+)$/.exec(path);
    if (loop) return this.loops.get(Number(loop[1])) ?? null;
    return this.disks.get(path) ?? null;
  }

  private *allDevs(): Iterable<BlockDev> {
    yield* this.disks.values();
    yield* this.loops.values();
    yield* this.dmDevs.values();
  }

  private openCount(dev: BlockDev): number {
    let n = this.opens.get(dev) ?? 0;
    for (const d of this.dms.values()) {
      for (const t of [d.live, d.inactive]) if (t) n += t.holds.filter((h) => h === dev).length;
    }
    // A mounted filesystem holds its device open once, however many mount points (and mount namespaces) show it.
    if (this.mountsOf(dev).length > 0 || [...this.leaked.values()].includes(dev)) n += 1;
    return n;
  }

  /** A holder of `dev` went away: finish a deferred dm remove or a deferred loop detach. */
  private released(dev: BlockDev): void {
    if (this.openCount(dev) > 0) return;
    if (dev.kind === 'dm') {
      const d = [...this.dms.values()].find((x) => this.dmDevs.get(x.name) === dev);
      if (d?.deferredRemove) this.destroy(d);
    } else if (dev.kind === 'loop' && dev.autoclear) {
      this.loops.delete(dev.minor);
    }
  }

  private destroy(d: DmDev): void {
    const holds = [...(d.live?.holds ?? []), ...(d.inactive?.holds ?? [])];
    this.dms.delete(d.name);
    this.dmDevs.delete(d.name);
    for (const h of holds) this.released(h);
  }

  private dmOf(name: string, syscall: string): DmDev {
    const d = this.dms.get(name);
    if (!d) throw kernelError('ENXIO', syscall, { device: name });
    return d;
  }

  private infoOf(d: DmDev): DeviceInfo {
    const dev = this.dmDevs.get(d.name)!;
    return {
      name: d.name, uuid: d.uuid, major: DM_MAJOR, minor: d.minor, openCount: this.openCount(dev), eventNr: 0,
      targetCount: d.live?.lines.length ?? 0, suspended: d.suspended, readOnly: d.readOnly,
      activeTable: d.live !== null, inactiveTable: d.inactive !== null, deferredRemove: d.deferredRemove,
    };
  }

  private poolTargetOf(dev: BlockDev | null): PoolTarget | null {
    if (!dev || dev.kind !== 'dm') return null;
    for (const d of this.dms.values()) {
      if (this.dmDevs.get(d.name) === dev) return d.live?.target?.kind === 'pool' ? d.live.target : null;
    }
    return null;
  }

  /** Is thin `id` of the pool on `meta` held open by some table (live or inactive)? */
  private thinOpen(meta: PoolMeta, id: number): DmDev | null {
    for (const d of this.dms.values()) {
      for (const t of [d.live, d.inactive]) {
        if (t?.target?.kind === 'thin' && t.target.id === id && this.poolTargetOf(t.target.poolDev)?.meta === meta) return d;
      }
    }
    return null;
  }

  private sizeOf(dev: BlockDev): number {
    if (dev.kind === 'dm') {
      const d = [...this.dms.values()].find((x) => this.dmDevs.get(x.name) === dev);
      return (d?.live?.lines.reduce((n, l) => n + l.length, 0) ?? 0) * 512;
    }
    if (dev.kind === 'loop' && dev.capacity !== undefined) return dev.capacity;
    return dev.storage!.size;
  }

  // ---------------------------------------------------------------- table construction (target ctr)

  /** Builds a table as the kernel's target constructors would, or throws their errno. */
  private construct(name: string, lines: TableLine[], readOnly: boolean): Table {
    const E = (errno: string) => kernelError(errno, 'DM_TABLE_LOAD', { device: name });
    // dm core: targets must be contiguous from sector 0 with non-zero lengths.
    let next = 0;
    for (const l of lines) {
      if (l.start !== next || l.length === 0) throw E('EINVAL');
      next += l.length;
    }
    if (lines.length === 0) throw E('EINVAL'); // dm_table_complete: a table needs a target
    for (const l of lines) if (l.type !== 'thin-pool' && l.type !== 'thin') throw E('EINVAL'); // not modelled
    // thin-pool is a singleton target; the model treats thin the same (one target per device).
    if (lines.length > 1) throw E('EINVAL');
    const line = lines[0]!;
    const argv = line.params.trim().split(/\s+/).filter((s) => s.length > 0);
    if (line.type === 'thin') return this.constructThin(name, line, argv, readOnly);
    return this.constructPool(name, line, argv, readOnly);
  }

  private constructThin(name: string, line: TableLine, argv: string[], readOnly: boolean): Table {
    const E = (errno: string) => kernelError(errno, 'DM_TABLE_LOAD', { device: name });
    if (argv.length !== 2 && argv.length !== 3) throw E('EINVAL');
    const poolDev = this.resolve(argv[0]!);
    if (!poolDev) throw E('ENODEV');
    const id = parseKstrtoull(argv[1]);
    if (id === null || id > MAX_THIN_ID) throw E('EINVAL');
    let origin: BlockDev | null = null;
    if (argv.length === 3) {
      origin = this.resolve(argv[2]!);
      if (!origin) throw E('ENODEV');
    }
    const pool = this.poolTargetOf(poolDev);
    if (!pool) throw E('EINVAL');
    if (!pool.meta.thins.has(id)) throw E('ENODATA');
    return { lines: [line], target: { kind: 'thin', poolDev, id }, holds: origin ? [poolDev, origin] : [poolDev], readOnly };
  }

  private constructPool(name: string, line: TableLine, argv: string[], readOnly: boolean): Table {
    const E = (errno: string) => kernelError(errno, 'DM_TABLE_LOAD', { device: name });
    if (argv.length < 4) throw E('EINVAL');
    const metaDev = this.resolve(argv[0]!);
    const dataDev = this.resolve(argv[1]!);
    if (!metaDev || !dataDev) throw E('ENODEV');
    const bs = parseKstrtoull(argv[2]);
    if (bs === null || bs < MIN_DATA_BLOCK_SECTORS || bs > MAX_DATA_BLOCK_SECTORS || bs % MIN_DATA_BLOCK_SECTORS !== 0) throw E('EINVAL');
    const lwm = parseKstrtoull(argv[3]);
    if (lwm === null) throw E('EINVAL');
    const features: string[] = [];
    if (argv.length > 4) {
      const n = parseKstrtoull(argv[4]);
      if (n === null || argv.length !== 5 + n) throw E('EINVAL');
      const known = ['skip_block_zeroing', 'ignore_discard', 'no_discard_passdown', 'read_only', 'error_if_no_space'];
      for (const f of argv.slice(5)) {
        if (!known.includes(f)) throw E('EINVAL');
        if (!features.includes(f)) features.push(f);
      }
      features.sort((a, b) => known.indexOf(a) - known.indexOf(b));
    }
    if (metaDev === dataDev) throw E('EINVAL');
    if (line.length * 512 > this.sizeOf(dataDev)) throw E('EINVAL');
    // One pool per metadata device: another dm device using it is EBUSY; reloading the same device is not.
    for (const d of this.dms.values()) {
      if (d.name === name) continue;
      for (const t of [d.live, d.inactive]) if (t?.target?.kind === 'pool' && t.target.metaDev === metaDev) throw E('EBUSY');
    }
    const st = metaDev.storage ?? null;
    let meta: PoolMeta;
    const existing = this.dms.get(name);
    const reused = [existing?.live, existing?.inactive].find((t) => t?.target?.kind === 'pool' && t.target.metaDev === metaDev);
    if (reused && reused.target?.kind === 'pool') meta = reused.target.meta;
    else if (st?.meta) {
      // Existing metadata records the data block size; a table with another one is refused.
      if (st.meta.dataBlockSectors !== bs) throw E('EINVAL');
      meta = st.meta;
    }
    else if (st && st.garbage) throw E('ENOTBLK');
    else if (st && st.fs) throw E('ENOTBLK');
    else {
      // An all-zero superblock: the pool formats the metadata device (and commits) in its constructor.
      meta = { transactionId: 0, dataBlockSectors: bs, dataBlocks: 0, time: 0, heldRoot: null, thins: new Map() };
      if (st) st.meta = meta;
    }
    const metaBlocks = Math.min(Math.floor(this.sizeOf(metaDev) / METADATA_BLOCK_BYTES), MAX_METADATA_BLOCKS);
    return {
      lines: [line],
      target: { kind: 'pool', metaDev, dataDev, meta, blockSectors: bs, lwm, features, metaBlocks },
      holds: [metaDev, dataDev],
      readOnly,
    };
  }

  private emitTable(t: Table): TableLine[] {
    const mm = (d: BlockDev) => `${d.major}:${d.minor}`;
    if (!t.target) return [];
    const l = t.lines[0]!;
    if (t.target.kind === 'pool') {
      const p = t.target;
      const params = `${mm(p.metaDev)} ${mm(p.dataDev)} ${p.blockSectors} ${p.lwm} ${p.features.length} ` + p.features.map((f) => `${f} `).join('');
      return [{ start: l.start, length: l.length, type: l.type, params }];
    }
    const origin = t.holds[1];
    return [{ start: l.start, length: l.length, type: l.type, params: `${mm(t.target.poolDev)} ${t.target.id}` + (origin ? ` ${mm(origin)}` : '') }];
  }

  private emitStatus(t: Table): TableLine[] {
    if (!t.target) return [];
    const l = t.lines[0]!;
    let params: string;
    if (t.target.kind === 'pool') {
      const p = t.target;
      const totalData = Math.floor(l.length / p.blockSectors);
      let usedData = 0;
      for (const th of p.meta.thins.values()) usedData += Math.ceil(th.mappedSectors / p.blockSectors);
      params = formatThinPoolStatus({
        failed: false,
        transactionId: p.meta.transactionId,
        usedMetadataBlocks: Math.min(p.metaBlocks, BASE_METADATA_BLOCKS + p.meta.thins.size),
        totalMetadataBlocks: p.metaBlocks,
        usedDataBlocks: Math.min(usedData, totalData),
        totalDataBlocks: totalData,
        heldMetadataRoot: p.meta.heldRoot,
        mode: 'rw',
        discard: p.features.includes('ignore_discard') ? 'ignore_discard' : p.features.includes('no_discard_passdown') ? 'no_discard_passdown' : 'discard_passdown',
        noSpace: p.features.includes('error_if_no_space') ? 'error' : 'queue',
        needsCheck: false,
        metadataLowWaterMark: Math.min(1024, Math.floor(p.metaBlocks / 4)),
      });
    } else {
      const pool = this.poolTargetOf(t.target.poolDev);
      const th = pool?.meta.thins.get(t.target.id);
      params = th ? formatThinStatus({ state: 'active', mappedSectors: th.mappedSectors, highestMappedSector: th.highestSector }) : 'Fail';
    }
    return [{ start: l.start, length: l.length, type: l.type, params }];
  }

  private freeMinor(used: Iterable<number>): number {
    const s = new Set(used);
    let m = 0;
    while (s.has(m)) m++;
    return m;
  }

  // ---------------------------------------------------------------- Backend: device-mapper

  devicePath(name: string): string {
    return `/dev/mapper/${name}`;
  }
  async version() {
    return { major: 4, minor: 47, patch: 0 };
  }
  async listDevices(): Promise<DeviceListEntry[]> {
    return [...this.dms.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map((d) => ({ name: d.name, major: DM_MAJOR, minor: d.minor }));
  }
  protected async rawInfo(name: string): Promise<DeviceInfo | null> {
    const d = this.dms.get(name);
    return d ? this.infoOf(d) : null;
  }
  protected async rawCreate(name: string, table: TableLine[], opts: { uuid?: string; readOnly?: boolean }): Promise<DeviceInfo> {
    if (this.dms.has(name)) throw kernelError('EBUSY', 'DM_DEV_CREATE', { device: name });
    if (opts.uuid && [...this.dms.values()].some((d) => d.uuid === opts.uuid)) throw kernelError('EBUSY', 'DM_DEV_CREATE', { device: name });
    // The kernel would create first and the native layer remove it after a failed load; the model
    // constructs first, which leaves the same end state (no device) with the same errno.
    // An empty table means DM_DEV_CREATE alone (a device with no table), as in KernelBackend.
    const t = table.length ? this.construct(name, table, opts.readOnly ?? false) : null;
    if (t) this.preresume(name, t);
    const minor = this.freeMinor([...this.dms.values()].map((d) => d.minor));
    const d: DmDev = { name, uuid: opts.uuid ?? '', minor, live: t, inactive: null, suspended: false, readOnly: opts.readOnly ?? false, deferredRemove: false };
    this.dms.set(name, d);
    this.dmDevs.set(name, { kind: 'dm', path: this.devicePath(name), major: DM_MAJOR, minor });
    return this.infoOf(d);
  }
  /**
   * pool_preresume: a pool table shorter than the data the metadata records is refused ("pool target (N
   * blocks) too small: expected M"); a longer one extends the data space map and commits it.
   */
  private preresume(name: string, t: Table): void {
    const p = t.target;
    if (p?.kind !== 'pool') return;
    const blocks = Math.floor(t.lines[0]!.length / p.blockSectors);
    if (blocks < p.meta.dataBlocks) throw kernelError('EINVAL', 'DM_DEV_SUSPEND(resume)', { device: name });
    p.meta.dataBlocks = blocks;
    if (p.metaDev.storage) p.metaDev.storage.meta = p.meta;
  }
  protected async rawLoad(name: string, table: TableLine[], opts: { readOnly?: boolean }): Promise<void> {
    const d = this.dmOf(name, 'DM_TABLE_LOAD');
    const t = this.construct(name, table, opts.readOnly ?? false);
    const old = d.inactive;
    d.inactive = t;
    for (const h of old?.holds ?? []) this.released(h);
  }
  protected async rawClear(name: string): Promise<void> {
    const d = this.dmOf(name, 'DM_TABLE_CLEAR');
    const old = d.inactive;
    d.inactive = null;
    for (const h of old?.holds ?? []) this.released(h);
  }
  protected async rawSuspend(name: string): Promise<void> {
    this.dmOf(name, 'DM_DEV_SUSPEND').suspended = true;
  }
  protected async rawResume(name: string): Promise<DeviceInfo> {
    const d = this.dmOf(name, 'DM_DEV_SUSPEND(resume)');
    // A suspended device needs a table to resume with; an unsuspended one returns at once.
    if (d.suspended && !d.inactive && !d.live) throw kernelError('EINVAL', 'DM_DEV_SUSPEND(resume)', { device: name });
    if (d.inactive) {
      this.preresume(name, d.inactive);
      const old = d.live;
      d.live = d.inactive;
      d.readOnly = d.inactive.readOnly;
      d.inactive = null;
      for (const h of old?.holds ?? []) this.released(h);
    }
    d.suspended = false;
    return this.infoOf(d);
  }
  protected async rawRemove(name: string, opts: { deferred?: boolean }): Promise<RemoveResult> {
    const d = this.dmOf(name, 'DM_DEV_REMOVE');
    if (this.openCount(this.dmDevs.get(name)!) > 0) {
      if (!opts.deferred) throw kernelError('EBUSY', 'DM_DEV_REMOVE', { device: name });
      d.deferredRemove = true;
      return { removed: false, deferred: true };
    }
    this.destroy(d);
    return { removed: true, deferred: false };
  }
  protected async rawTable(name: string): Promise<TableLine[]> {
    const d = this.dmOf(name, 'DM_TABLE_STATUS(table)');
    return d.live ? this.emitTable(d.live) : [];
  }
  protected async rawStatus(name: string): Promise<TableLine[]> {
    const d = this.dmOf(name, 'DM_TABLE_STATUS');
    return d.live ? this.emitStatus(d.live) : [];
  }

  protected async rawMessage(name: string, message: string, sector: number): Promise<string | null> {
    const E = (errno: string) => kernelError(errno, 'DM_TARGET_MSG', { device: name });
    const d = this.dmOf(name, 'DM_TARGET_MSG');
    const argv = message.trim().split(/\s+/).filter((s) => s.length > 0);
    if (argv.length === 0) throw E('EINVAL');
    // dm-ioctl handles '@' messages itself, before any target (message_for_md): any device, table or not.
    if (argv[0]!.startsWith('@')) {
      if (argv[0]!.toLowerCase() !== '@cancel_deferred_remove' || argv.length !== 1) throw E('EINVAL');
      d.deferredRemove = false;
      return null;
    }
    if (!d.live) return null; // observed: success, no effect
    const size = d.live.lines.reduce((n, l) => n + l.length, 0);
    if (sector >= size) throw E('EINVAL');
    const target = d.live.target;
    if (!target || target.kind !== 'pool') throw E('EINVAL');
    const meta = target.meta;
    const id = (tok: string | undefined) => {
      const n = parseKstrtoull(tok);
      if (n === null || n > MAX_THIN_ID) throw E('EINVAL');
      return n;
    };
    const cmd = argv[0]!.toLowerCase();
    switch (cmd) {
      case 'create_thin': {
        if (argv.length !== 2) throw E('EINVAL');
        const dev = id(argv[1]);
        if (meta.thins.has(dev)) throw E('EEXIST');
        meta.thins.set(dev, { fs: null, mappedSectors: 0, highestSector: null, creationTime: meta.time, snapTime: meta.time });
        break;
      }
      case 'create_snap': {
        if (argv.length !== 3) throw E('EINVAL');
        const dev = id(argv[1]);
        const originId = id(argv[2]);
        if (meta.thins.has(dev)) throw E('EEXIST');
        const origin = meta.thins.get(originId);
        if (!origin) throw E('ENODATA');
        const holder = this.thinOpen(meta, originId);
        if (holder && holder.live?.target?.kind === 'thin' && holder.live.target.id === originId && !holder.suspended) {
          this.hazards.push(`create_snap ${dev} ${originId} on pool ${name}: origin is active on ${holder.name} and not suspended`);
        }
        meta.time++;
        origin.snapTime = meta.time;
        meta.thins.set(dev, { ...origin, creationTime: meta.time, snapTime: meta.time });
        break;
      }
      case 'delete': {
        if (argv.length !== 2) throw E('EINVAL');
        const dev = id(argv[1]);
        if (!meta.thins.has(dev)) throw E('ENODATA');
        if (this.thinOpen(meta, dev)) throw E('EBUSY');
        meta.thins.delete(dev);
        break;
      }
      case 'set_transaction_id': {
        if (argv.length !== 3) throw E('EINVAL');
        const from = parseKstrtoull(argv[1]);
        const to = parseKstrtoull(argv[2]);
        if (from === null || to === null) throw E('EINVAL');
        if (from !== meta.transactionId) throw E('EINVAL'); // "mismatched transaction id"
        meta.transactionId = to;
        break;
      }
      case 'reserve_metadata_snap':
        if (argv.length !== 1) throw E('EINVAL');
        if (meta.heldRoot !== null) throw E('EBUSY');
        meta.heldRoot = 1000 + meta.time;
        break;
      case 'release_metadata_snap':
        if (argv.length !== 1) throw E('EINVAL');
        if (meta.heldRoot === null) throw E('EINVAL');
        meta.heldRoot = null;
        break;
      default:
        throw E('EINVAL');
    }
    // pool_message() commits before returning: the change is on the metadata device now.
    if (target.metaDev.storage) target.metaDev.storage.meta = meta;
    return null;
  }

  async poolMetadata(pool: string): Promise<PoolMetadata> {
    const d = this.dmOf(pool, 'DM_TABLE_STATUS');
    const t = d.live?.target;
    if (!t || t.kind !== 'pool') throw new ThinjournalError('ERR_DM_STATUS', `${pool} is not a single thin-pool target`, { device: pool });
    // As KernelBackend, which reads through a metadata snapshot: a stale reservation is released, none is left.
    t.meta.heldRoot = null;
    return { transactionId: t.meta.transactionId, ids: [...t.meta.thins.keys()].sort((a, b) => a - b), dataBlockSectors: t.meta.dataBlockSectors, dataBlocks: t.meta.dataBlocks };
  }
  async readMetadata(metadataDevice: string): Promise<PoolMetadata> {
    // thin_dump reads a block device or a file (a loopback pool's metadata file, attached or not).
    const storage = this.resolve(metadataDevice)?.storage ?? this.files.get(metadataDevice);
    if (!storage) throw kernelError('ENOENT', 'open', { path: metadataDevice });
    const meta = storage.meta;
    if (!meta) {
      throw new ThinjournalError('ERR_FS_TOOL', `thin_dump ${metadataDevice} failed (exit 1): bad checksum in superblock (model)`, { tool: 'thin_dump', status: 1, stderr: 'bad checksum in superblock' });
    }
    return { transactionId: meta.transactionId, ids: [...meta.thins.keys()].sort((a, b) => a - b), dataBlockSectors: meta.dataBlockSectors, dataBlocks: meta.dataBlocks };
  }

  // ---------------------------------------------------------------- Backend: loop and block devices

  async attachLoop(file: string, opts: { readOnly?: boolean } = {}): Promise<string> {
    const f = this.files.get(file);
    if (!f) throw kernelError('ENOENT', 'open', { path: file });
    if (f.readOnlyFs && !opts.readOnly) throw kernelError('EROFS', 'open', { path: file });
    const nr = this.freeMinor(this.loops.keys());
    const path = `/dev/loop${nr}`;
    this.loops.set(nr, { kind: 'loop', path, major: LOOP_MAJOR, minor: nr, storage: f, file, readOnly: opts.readOnly ?? false, capacity: f.size });
    return path;
  }
  async resizeLoop(device: string): Promise<number> {
    const dev = this.resolve(device);
    if (!dev || dev.kind !== 'loop') throw kernelError(dev ? 'ENOTTY' : 'ENOENT', 'ioctl', { path: device });
    dev.capacity = dev.storage!.size;
    return dev.capacity;
  }
  async detachLoop(device: string): Promise<void> {
    const dev = this.resolve(device);
    if (!dev || dev.kind !== 'loop') throw kernelError(dev ? 'ENOTTY' : 'ENXIO', 'LOOP_CLR_FD', { path: device });
    // 6.1: clearing a loop device others hold only sets autoclear; it goes at the last close.
    if (this.openCount(dev) > 0) dev.autoclear = true;
    else this.loops.delete(dev.minor);
  }
  async loopBackingFile(device: string): Promise<string> {
    const dev = this.resolve(device);
    if (!dev || dev.kind !== 'loop') throw kernelError('ENXIO', 'LOOP_GET_STATUS64', { path: device });
    return dev.file!;
  }
  /** The lowest-numbered loop bound to the file now at `file` (by identity: a removed file's loops are not). */
  protected async rawFindLoop(file: string): Promise<string | null> {
    const f = this.files.get(file);
    if (!f) return null;
    const bound = [...this.loops.values()].filter((l) => l.storage === f).sort((a, b) => a.minor - b.minor);
    return bound[0]?.path ?? null;
  }
  private blockDev(device: string, syscall: string): BlockDev {
    const dev = this.resolve(device);
    if (!dev) throw kernelError('ENOENT', 'open', { path: device });
    void syscall;
    return dev;
  }
  async blockDeviceSize(device: string): Promise<number> {
    return this.sizeOf(this.blockDev(device, 'BLKGETSIZE64'));
  }
  async deviceNumber(path: string): Promise<string | null> {
    const dev = this.resolve(path);
    return dev ? `${dev.major}:${dev.minor}` : null;
  }
  async zeroRange(device: string, offset: number, length: number): Promise<void> {
    const dev = this.blockDev(device, 'BLKZEROOUT');
    if (offset + length > this.sizeOf(dev)) throw kernelError('EINVAL', 'BLKZEROOUT', { path: device });
    if (offset > 0) return; // only the head (superblocks) is modelled
    if (dev.kind === 'dm') {
      const th = this.thinOf(dev);
      if (th) th.fs = null;
      return;
    }
    const st = dev.storage!;
    if (st.meta && [...this.dms.values()].some((d) => [d.live, d.inactive].some((t) => t?.target?.kind === 'pool' && t.target.metaDev === dev))) {
      this.hazards.push(`zeroRange on ${device}: it is the metadata device of an active pool`);
    }
    st.meta = null;
    st.fs = null;
    st.garbage = false;
  }
  async discard(device: string, offset: number, length: number): Promise<void> {
    const dev = this.blockDev(device, 'BLKDISCARD');
    if (offset + length > this.sizeOf(dev)) throw kernelError('EINVAL', 'BLKDISCARD', { path: device });
  }
  async flush(device: string): Promise<void> {
    this.blockDev(device, 'fsync');
  }

  // ---------------------------------------------------------------- Backend: filesystems

  private thinOf(dev: BlockDev): ThinMeta | null {
    const d = [...this.dms.values()].find((x) => this.dmDevs.get(x.name) === dev);
    const t = d?.live?.target;
    if (!t || t.kind !== 'thin') return null;
    return this.poolTargetOf(t.poolDev)?.meta.thins.get(t.id) ?? null;
  }
  private fsOf(dev: BlockDev): ModelFs | null {
    if (dev.kind === 'dm') return this.thinOf(dev)?.fs ?? null;
    return dev.storage!.fs;
  }

  /**
   * The filesystem gets `opts.uuid`, or else a UUID derived (SHA-256) from the device path and a counter
   * of this backend's derived UUIDs: random-looking, in version 4 form, and the same for the same sequence
   * of calls (the real tools pick a random one). `opts.args` are not interpreted (nor is mkfs.xfs's 300 MiB
   * minimum): the model keeps only a type and a UUID per filesystem.
   */
  protected async rawMkfs(device: string, type: FsType, opts: MkfsOptions): Promise<void> {
    const dev = this.resolve(device);
    const fail = (why: string) => new ThinjournalError('ERR_FS_TOOL', `mkfs.${type} ${device} failed (exit 1): ${why} (model)`, { tool: `mkfs.${type}`, status: 1, stderr: why });
    if (!dev) throw fail(`The file ${device} does not exist`);
    if (this.mountsOf(dev).length) throw fail(`${device} is mounted; will not make a filesystem here!`);
    const size = this.sizeOf(dev);
    if (size === 0) throw fail('Device size reported to be zero');
    const fs: ModelFs = { type, uuid: opts.uuid ?? this.derivedUuid(device), bytes: Math.floor(size / MODEL_FS_BLOCK) * MODEL_FS_BLOCK };
    if (dev.kind === 'dm') {
      const th = this.thinOf(dev);
      if (!th) throw fail('not a thin device (model)');
      th.fs = fs;
      // mkfs writes at both ends; the exact mapped count is the filesystem's business.
      th.mappedSectors = Math.max(th.mappedSectors, Math.min(size / 512, 4096));
      th.highestSector = size / 512 - 1;
    } else {
      dev.storage!.fs = fs;
      dev.storage!.meta = null;
      dev.storage!.garbage = false;
    }
  }
  private derivedUuid(device: string): string {
    const b = createHash('sha256').update(`thinjournal-model-mkfs\0${device}\0${this.derivedUuids++}`).digest().subarray(0, 16);
    b[6] = (b[6]! & 0x0f) | 0x40; // version 4
    b[8] = (b[8]! & 0x3f) | 0x80; // RFC 4122 variant
    return formatUuid(b);
  }
  async growFs(device: string, mountPoint: string, type: FsType): Promise<void> {
    const m = this.mounts.get(mountPoint)?.at(-1);
    if (!m || m.fsType !== type || this.resolve(device) !== m.dev) {
      throw new ThinjournalError('ERR_FS_TOOL', `grow ${device} at ${mountPoint} failed (exit 1): not mounted there (model)`, { tool: type === 'ext4' ? 'resize2fs' : 'xfs_growfs', status: 1, stderr: 'not mounted' });
    }
    this.growCalls.push(device);
    const fs = this.fsOf(m.dev);
    if (!fs) return;
    const grown: ModelFs = { ...fs, bytes: Math.max(fs.bytes, Math.floor(this.sizeOf(m.dev) / MODEL_FS_BLOCK) * MODEL_FS_BLOCK) };
    if (m.dev.kind === 'dm') this.thinOf(m.dev)!.fs = grown;
    else m.dev.storage!.fs = grown;
  }
  /** Every growFs that ran (device paths, in order): tests count the grows that were needed. */
  readonly growCalls: string[] = [];
  async fsGeometry(device: string): Promise<FsGeometry> {
    const dev = this.resolve(device);
    if (!dev) throw kernelError('ENOENT', 'open', { path: device });
    const t = this.fsOf(dev);
    if (!t) throw new ThinjournalError('ERR_FS_UNKNOWN', `${device}: no ext4 or xfs superblock with a valid geometry`, { device });
    return { type: t.type, blockSize: MODEL_FS_BLOCK, blocks: t.bytes / MODEL_FS_BLOCK, groupBlocks: 32768, firstBlock: 0, minTailBlocks: 0, alignBlocks: 1, maxBlocks: Number.MAX_SAFE_INTEGER };
  }
  async probeFsType(device: string): Promise<FsType> {
    const dev = this.resolve(device);
    if (!dev) throw kernelError('ENOENT', 'open', { path: device });
    const t = this.fsOf(dev);
    if (!t) throw new ThinjournalError('ERR_FS_UNKNOWN', `${device}: no ext4 or xfs superblock`, { device });
    return t.type;
  }
  async fsUuid(device: string): Promise<string> {
    const dev = this.resolve(device);
    if (!dev) throw kernelError('ENOENT', 'open', { path: device });
    const t = this.fsOf(dev);
    if (!t) throw new ThinjournalError('ERR_FS_UNKNOWN', `${device}: no ext4 or xfs superblock`, { device });
    return t.uuid;
  }
  /** XFS ENOSPC retry limits set per mounted device (what /sys/fs/xfs/<dev>/…/max_retries would read). */
  readonly xfsNospaceMaxRetries = new Map<string, number>();
  async xfsSetNospaceMaxRetries(device: string, retries: number): Promise<void> {
    if (!Number.isSafeInteger(retries) || retries < -1) throw new TypeError(`retries must be an integer ≥ -1, not ${String(retries)}`);
    const dev = this.resolve(device);
    // the sysfs directory exists while an XFS from this device is mounted
    if (!dev || !this.mountsOf(dev).some((m) => m.fsType === 'xfs')) throw kernelError('ENOENT', 'open', { path: device });
    this.xfsNospaceMaxRetries.set(device, retries);
  }
  private mountsOf(dev: BlockDev) {
    return [...this.mounts.values()].flat().filter((m) => m.dev === dev);
  }
  async mount(device: string, target: string, opts: MountOptions): Promise<void> {
    if (!this.dirs.has(target)) throw kernelError('ENOENT', 'mount', { path: target });
    const dev = this.resolve(device);
    if (!dev) throw kernelError('ENOENT', 'mount', { path: target });
    if (this.fsOf(dev)?.type !== opts.fsType) throw kernelError('EINVAL', 'mount', { path: target });
    const list = this.mounts.get(target) ?? [];
    list.push({ dev, fsType: opts.fsType, readOnly: opts.readOnly ?? false, source: device });
    this.mounts.set(target, list);
  }
  async umount(target: string): Promise<void> {
    const list = this.mounts.get(target);
    if (!list || list.length === 0) throw kernelError(this.dirs.has(target) ? 'EINVAL' : 'ENOENT', 'umount2', { path: target });
    const m = list.pop()!;
    if (list.length === 0) this.mounts.delete(target);
    this.released(m.dev);
  }
  async mounted(target: string): Promise<MountState | null> {
    const m = this.mounts.get(target)?.at(-1);
    return m ? { source: m.source, fsType: m.fsType, readOnly: m.readOnly } : null;
  }
}
