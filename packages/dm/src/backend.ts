/**
 * The Backend: everything the reconciler does to device-mapper, loop devices, block devices and
 * filesystems, as one async interface with two implementations — KernelBackend (the native layer) and
 * ModelBackend (an in-memory model of dm-thin). The conformance suite (test/src/conformance) runs the same
 * cases against both.
 *
 * BackendBase holds what both share: input validation (names, ids, tables — ERR_DM_*, before any effect),
 * the typed thin-pool wrappers over raw messages and status lines, and the suspend/create_snap/resume
 * sequence. Implementations supply the `raw*` primitives, which mirror the kernel calls one to one.
 */
import { ThinjournalError } from '@thinjournal/spec';
import { errnoOf } from './errors.js';
import { checkMkfsOptions, type FsGeometry, type FsType, type MkfsOptions } from './fs.js';
import { checkDmName, checkThinId, checkTransactionId, checkUuid } from './names.js';
import { GUARD_OF, guardedListener, runPlanSteps, type ExecStep, type PlanProgress, type PlanResult } from './plan.js';
import { parseThinPoolStatus, parseThinStatus, type ThinPoolStatus, type ThinPoolStatusOk, type ThinStatus } from './status.js';
import { parseThinPoolTable, thinPoolTable, thinTable, type ParsedThinPoolTable, type TableLine, type ThinPoolTableSpec, type ThinTableSpec } from './tables.js';

export interface DeviceInfo {
  name: string;
  uuid: string;
  major: number;
  minor: number;
  openCount: number;
  eventNr: number;
  targetCount: number;
  suspended: boolean;
  readOnly: boolean;
  activeTable: boolean;
  inactiveTable: boolean;
  deferredRemove: boolean;
}

export interface DeviceListEntry {
  name: string;
  major: number;
  minor: number;
}

export interface RemoveResult {
  /** The device is gone. */
  removed: boolean;
  /** The device was open: it is marked and goes away at its last close (only with `deferred: true`). */
  deferred: boolean;
}

export interface PoolMetadata {
  transactionId: number;
  /** Thin device ids in the pool's committed metadata, ascending. */
  ids: number[];
  /** The data block size the metadata was formatted with, in 512-byte sectors. */
  dataBlockSectors: number;
  /** The data device's size in data blocks as the metadata records it (the space map's length): a pool table
   *  with fewer blocks is refused by the kernel at resume. 0 before the pool's first resume. */
  dataBlocks: number;
}

export interface MountState {
  source: string;
  fsType: string;
  readOnly: boolean;
}

export interface MountOptions {
  fsType: FsType;
  readOnly?: boolean;
  /** Filesystem-specific mount data, e.g. "nouuid" for an xfs snapshot. */
  data?: string;
}

/**
 * What a backend is, declared by the backend itself (abstract-level's `supports`): callers ask these and
 * never branch on which backend they have.
 */
export interface BackendCapabilities {
  /** Paths are the host's: files and directories made with node:fs, device nodes and host tools (blkid, symlinks) are the backend's too. False: a namespace of its own, told of host paths through hostDirectoryMade/hostFileMade/hostFileGrown. */
  readonly hostPaths: boolean;
  /** Mounted filesystems are real: files written under a mount point are on the device. */
  readonly hostMounts: boolean;
  /** Which filesystems and dm features there are is the host's to say (mkfs.xfs, /proc/filesystems, the dm version); false: the backend has every one. */
  readonly hostEnvironment: boolean;
}

export interface Backend {
  /** A label for messages and reports; behaviour is asked of `supports`. */
  readonly kind: 'kernel' | 'model';
  readonly supports: BackendCapabilities;
  /**
   * Host paths made outside the backend (the driver's home, a loopback pool's files). A backend on the
   * host's paths ignores them; one with its own namespace takes them in (a file once, at its size then).
   */
  hostDirectoryMade(dir: string): void;
  hostFileMade(file: string, size: number): void;
  hostFileGrown(file: string, size: number): void;
  /** The node path of a dm device: /dev/mapper/<name> (KernelBackend creates it when missing; no udev). */
  devicePath(name: string): string;

  // ---- device-mapper, one call each ----
  version(): Promise<{ major: number; minor: number; patch: number }>;
  listDevices(): Promise<DeviceListEntry[]>;
  /** null when no such device. */
  info(name: string): Promise<DeviceInfo | null>;
  /**
   * Create + load + resume. If a later step fails the device is removed again: nothing half-made.
   * An empty `table` creates a device without a table (DM_DEV_CREATE alone).
   */
  create(name: string, table: TableLine[], opts?: { uuid?: string; readOnly?: boolean }): Promise<DeviceInfo>;
  /** Loads the inactive table; `resume` swaps it in. */
  load(name: string, table: TableLine[], opts?: { readOnly?: boolean }): Promise<void>;
  clear(name: string): Promise<void>;
  suspend(name: string, opts?: { noFlush?: boolean }): Promise<void>;
  resume(name: string): Promise<DeviceInfo>;
  remove(name: string, opts?: { deferred?: boolean }): Promise<RemoveResult>;
  table(name: string): Promise<TableLine[]>;
  status(name: string, opts?: { noFlush?: boolean }): Promise<TableLine[]>;
  /** A target message; the reply text or null. To a device without a live table a message does nothing: earlier 6.1 kernels accept it, 6.1.0-57 answers EINVAL. */
  message(name: string, message: string, sector?: number): Promise<string | null>;

  // ---- dm-thin, typed ----
  createPool(name: string, spec: ThinPoolTableSpec, opts?: { uuid?: string }): Promise<DeviceInfo>;
  activateThin(name: string, spec: ThinTableSpec, opts?: { uuid?: string; readOnly?: boolean }): Promise<DeviceInfo>;
  poolTable(pool: string): Promise<ParsedThinPoolTable & { lengthSectors: number }>;
  poolStatus(pool: string): Promise<ThinPoolStatus>;
  /** poolStatus, refusing a pool in fail mode (ERR_DM_STATUS). */
  poolStatusOk(pool: string): Promise<ThinPoolStatusOk>;
  thinStatus(name: string): Promise<ThinStatus>;
  createThin(pool: string, id: number): Promise<void>;
  /** create_snap as is: for an active origin use snapshotActive (thin-provisioning.rst: suspend it first). */
  createSnap(pool: string, id: number, originId: number): Promise<void>;
  /** suspend(originDevice) → create_snap → resume(originDevice), resuming even when create_snap fails. */
  snapshotActive(pool: string, id: number, originId: number, originDevice: string): Promise<void>;
  deleteThin(pool: string, id: number): Promise<void>;
  /** The kernel refuses (EINVAL) when `from` is not the pool's current transaction id. */
  setTransactionId(pool: string, from: number, to: number): Promise<void>;
  /** Committed metadata of an active pool (transaction id and thin ids). */
  poolMetadata(pool: string): Promise<PoolMetadata>;
  /** The same, read from a metadata device that no active pool uses (e.g. after a reboot). */
  readMetadata(metadataDevice: string): Promise<PoolMetadata>;

  // ---- loop and block devices ----
  attachLoop(file: string, opts?: { readOnly?: boolean }): Promise<string>;
  detachLoop(device: string): Promise<void>;
  loopBackingFile(device: string): Promise<string>;
  /**
   * LOOP_SET_CAPACITY: the loop device takes its backing file's current size (a loop keeps the size it had
   * at attach until told; growing a loopback pool grows the file, then this). Resolves to the new size.
   */
  resizeLoop(device: string): Promise<number>;
  /**
   * The loop device already bound to `file` (an absolute path; TypeError otherwise), or null — so that a
   * restarted process re-uses its loop devices instead of binding the same file twice. "Bound to `file`"
   * means to the file that path names now: a loop whose backing file was deleted (or replaced by another
   * file at that path) is not one. Several loops on the file: the lowest-numbered. A missing file: null.
   */
  findLoop(file: string): Promise<string | null>;
  blockDeviceSize(device: string): Promise<number>;
  /** `major:minor` of the block device node at `path` (as tables and status lines name devices), or null when
   *  nothing, or no block device, is there. */
  deviceNumber(path: string): Promise<string | null>;
  zeroRange(device: string, offset: number, length: number): Promise<void>;
  discard(device: string, offset: number, length: number): Promise<void>;
  flush(device: string): Promise<void>;

  // ---- filesystems ----
  /**
   * Makes a filesystem (forced). `uuid`: the new filesystem gets exactly this UUID (canonical lowercase,
   * not nil; ERR_DM_ARG otherwise); `args`: extra tool arguments, before the device (TypeError unless an
   * array of strings without NUL). Invalid input is refused before any effect.
   */
  mkfs(device: string, type: FsType, opts?: MkfsOptions): Promise<void>;
  /** Grows the filesystem mounted at `mountPoint` from `device` to the device's size (a no-op when it already is). */
  growFs(device: string, mountPoint: string, type: FsType): Promise<void>;
  /** The size fields of the filesystem's superblock (fsGrowTarget / fsNeedsGrow read them); ERR_FS_UNKNOWN without an ext4/xfs superblock. */
  fsGeometry(device: string): Promise<FsGeometry>;
  probeFsType(device: string): Promise<FsType>;
  /** The filesystem's UUID from its superblock, canonical lowercase; ERR_FS_UNKNOWN when there is no ext4/xfs superblock. */
  fsUuid(device: string): Promise<string>;
  /**
   * XFS's ENOSPC retry limit for metadata writes of the XFS mounted from `device` (dm.xfs_nospace_max_retries;
   * -1 forever, 0 fail at once). ERR_KERNEL ENOENT when no XFS is mounted from it.
   */
  xfsSetNospaceMaxRetries(device: string, retries: number): Promise<void>;
  mount(device: string, target: string, opts: MountOptions): Promise<void>;
  umount(target: string, opts?: { detach?: boolean }): Promise<void>;
  mounted(target: string): Promise<MountState | null>;

  // ---- plans ----
  /**
   * Runs a plan's kernel steps in order, each unless its guard says it is already done (plan.ts has the
   * table), and stops at the first failure: the result names the outcome of every step that ran and the
   * failed step's error; it rejects only for invalid steps (before any effect) or a listener that threw.
   * KernelBackend runs the whole list in one native call on a worker thread.
   */
  executePlan(steps: readonly ExecStep[], onProgress?: (p: PlanProgress) => void): Promise<PlanResult>;
}

export abstract class BackendBase implements Backend {
  abstract readonly kind: 'kernel' | 'model';
  abstract readonly supports: BackendCapabilities;
  abstract hostDirectoryMade(dir: string): void;
  abstract hostFileMade(file: string, size: number): void;
  abstract hostFileGrown(file: string, size: number): void;
  abstract devicePath(name: string): string;
  abstract version(): Promise<{ major: number; minor: number; patch: number }>;
  abstract listDevices(): Promise<DeviceListEntry[]>;

  protected abstract rawInfo(name: string): Promise<DeviceInfo | null>;
  protected abstract rawCreate(name: string, table: TableLine[], opts: { uuid?: string; readOnly?: boolean }): Promise<DeviceInfo>;
  protected abstract rawLoad(name: string, table: TableLine[], opts: { readOnly?: boolean }): Promise<void>;
  protected abstract rawClear(name: string): Promise<void>;
  protected abstract rawSuspend(name: string, opts: { noFlush?: boolean }): Promise<void>;
  protected abstract rawResume(name: string): Promise<DeviceInfo>;
  protected abstract rawRemove(name: string, opts: { deferred?: boolean }): Promise<RemoveResult>;
  protected abstract rawTable(name: string): Promise<TableLine[]>;
  protected abstract rawStatus(name: string, opts: { noFlush?: boolean }): Promise<TableLine[]>;
  protected abstract rawMessage(name: string, message: string, sector: number): Promise<string | null>;
  abstract poolMetadata(pool: string): Promise<PoolMetadata>;
  abstract readMetadata(metadataDevice: string): Promise<PoolMetadata>;
  abstract attachLoop(file: string, opts?: { readOnly?: boolean }): Promise<string>;
  abstract detachLoop(device: string): Promise<void>;
  abstract loopBackingFile(device: string): Promise<string>;
  abstract resizeLoop(device: string): Promise<number>;
  /** findLoop with `file` already checked (an absolute path). */
  protected abstract rawFindLoop(file: string): Promise<string | null>;
  abstract blockDeviceSize(device: string): Promise<number>;
  abstract deviceNumber(path: string): Promise<string | null>;
  abstract zeroRange(device: string, offset: number, length: number): Promise<void>;
  abstract discard(device: string, offset: number, length: number): Promise<void>;
  abstract flush(device: string): Promise<void>;
  /** mkfs with its input already checked (checkMkfsOptions). */
  protected abstract rawMkfs(device: string, type: FsType, opts: MkfsOptions): Promise<void>;
  abstract growFs(device: string, mountPoint: string, type: FsType): Promise<void>;
  abstract fsGeometry(device: string): Promise<FsGeometry>;
  abstract probeFsType(device: string): Promise<FsType>;
  abstract fsUuid(device: string): Promise<string>;
  abstract xfsSetNospaceMaxRetries(device: string, retries: number): Promise<void>;
  abstract mount(device: string, target: string, opts: MountOptions): Promise<void>;
  abstract umount(target: string, opts?: { detach?: boolean }): Promise<void>;
  abstract mounted(target: string): Promise<MountState | null>;

  info(name: string): Promise<DeviceInfo | null> {
    return this.rawInfo(checkDmName(name));
  }
  // async: invalid input rejects (rather than throwing synchronously, as the dm calls above do).
  async mkfs(device: string, type: FsType, opts: MkfsOptions = {}): Promise<void> {
    checkMkfsOptions(type, opts);
    return this.rawMkfs(device, type, opts);
  }
  async findLoop(file: string): Promise<string | null> {
    if (typeof file !== 'string' || !file.startsWith('/') || file.includes('\0')) throw new TypeError(`findLoop needs an absolute path without NUL, not ${JSON.stringify(file)}`);
    return this.rawFindLoop(file);
  }

  async executePlan(steps: readonly ExecStep[], onProgress?: (p: PlanProgress) => void): Promise<PlanResult> {
    checkPlan(steps);
    const l = guardedListener(onProgress);
    return l.settle(await this.runPlan(steps, l.emit));
  }
  /** The executor; KernelBackend replaces it with the native one. Steps are valid here. */
  protected runPlan(steps: readonly ExecStep[], emit: (p: PlanProgress) => void): Promise<PlanResult> {
    return runPlanSteps(this, steps, emit);
  }
  create(name: string, table: TableLine[], opts: { uuid?: string; readOnly?: boolean } = {}): Promise<DeviceInfo> {
    checkDmName(name);
    checkUuid(opts.uuid);
    return this.rawCreate(name, checkTable(table), opts);
  }
  load(name: string, table: TableLine[], opts: { readOnly?: boolean } = {}): Promise<void> {
    return this.rawLoad(checkDmName(name), checkTable(table), opts);
  }
  clear(name: string): Promise<void> {
    return this.rawClear(checkDmName(name));
  }
  suspend(name: string, opts: { noFlush?: boolean } = {}): Promise<void> {
    return this.rawSuspend(checkDmName(name), opts);
  }
  resume(name: string): Promise<DeviceInfo> {
    return this.rawResume(checkDmName(name));
  }
  remove(name: string, opts: { deferred?: boolean } = {}): Promise<RemoveResult> {
    return this.rawRemove(checkDmName(name), opts);
  }
  table(name: string): Promise<TableLine[]> {
    return this.rawTable(checkDmName(name));
  }
  status(name: string, opts: { noFlush?: boolean } = {}): Promise<TableLine[]> {
    return this.rawStatus(checkDmName(name), opts);
  }
  message(name: string, message: string, sector = 0): Promise<string | null> {
    checkDmName(name);
    if (typeof message !== 'string' || message.includes('\0')) throw new TypeError('message must be a string without NUL');
    if (!Number.isSafeInteger(sector) || sector < 0) throw new ThinjournalError('ERR_DM_ARG', `sector ${sector} is not a non-negative safe integer`);
    return this.rawMessage(name, message, sector);
  }

  createPool(name: string, spec: ThinPoolTableSpec, opts: { uuid?: string } = {}): Promise<DeviceInfo> {
    return this.create(name, [thinPoolTable(spec)], opts);
  }
  activateThin(name: string, spec: ThinTableSpec, opts: { uuid?: string; readOnly?: boolean } = {}): Promise<DeviceInfo> {
    return this.create(name, [thinTable(spec)], opts);
  }
  async poolTable(pool: string): Promise<ParsedThinPoolTable & { lengthSectors: number }> {
    const line = single(await this.table(pool), 'thin-pool', pool);
    return { ...parseThinPoolTable(line.params), lengthSectors: line.length };
  }
  async poolStatus(pool: string): Promise<ThinPoolStatus> {
    return parseThinPoolStatus(single(await this.status(pool), 'thin-pool', pool).params);
  }
  /** poolStatus, refusing a failed pool (ERR_DM_STATUS). */
  async poolStatusOk(pool: string): Promise<ThinPoolStatusOk> {
    const s = await this.poolStatus(pool);
    if (s.failed) throw new ThinjournalError('ERR_DM_STATUS', `pool ${pool} reports ${s.reason}`, { line: s.reason, device: pool });
    return s;
  }
  async thinStatus(name: string): Promise<ThinStatus> {
    return parseThinStatus(single(await this.status(name), 'thin', name).params);
  }
  async createThin(pool: string, id: number): Promise<void> {
    checkThinId(id);
    await this.message(pool, `create_thin ${id}`);
  }
  async createSnap(pool: string, id: number, originId: number): Promise<void> {
    checkThinId(id);
    checkThinId(originId, 'origin thin id');
    await this.message(pool, `create_snap ${id} ${originId}`);
  }
  async snapshotActive(pool: string, id: number, originId: number, originDevice: string): Promise<void> {
    checkThinId(id);
    checkThinId(originId, 'origin thin id');
    checkDmName(pool);
    // thin-provisioning.rst: "If the origin is active you must suspend it before creating the snapshot
    // to avoid corruption" — the suspend flushes and holds the origin's I/O while its mappings are shared.
    await this.suspend(originDevice);
    let failure: unknown = null;
    try {
      await this.message(pool, `create_snap ${id} ${originId}`);
    } catch (err) {
      failure = err;
    }
    // Always resume: a create_snap failure must not leave the origin's I/O frozen.
    await this.resume(originDevice);
    if (failure) throw failure;
  }
  async deleteThin(pool: string, id: number): Promise<void> {
    checkThinId(id);
    await this.message(pool, `delete ${id}`);
  }
  async setTransactionId(pool: string, from: number, to: number): Promise<void> {
    checkTransactionId(from, 'current transaction id');
    checkTransactionId(to, 'new transaction id');
    await this.message(pool, `set_transaction_id ${from} ${to}`);
  }
}

/** Validates every step before any runs (the same checks as the single calls: ERR_DM_*, TypeError). */
function checkPlan(steps: readonly ExecStep[]): void {
  if (!Array.isArray(steps)) throw new TypeError('steps must be an array of plan steps');
  steps.forEach((st, i) => {
    const kind = (st as { kind?: unknown } | null)?.kind;
    if (typeof kind !== 'string' || !Object.hasOwn(GUARD_OF, kind)) throw new TypeError(`step ${i}: unknown kind ${JSON.stringify(kind)}`);
    const guard: string = GUARD_OF[kind as ExecStep['kind']];
    if (st.guard !== guard) throw new TypeError(`step ${i}: ${kind} takes guard ${guard}, not ${JSON.stringify(st.guard)}`);
    switch (st.kind) {
      case 'createDevice':
        checkDmName(st.name);
        if (!st.table.length) throw new ThinjournalError('ERR_DM_TABLE', `step ${i}: createDevice needs a table`);
        checkTable([...st.table]);
        break;
      case 'resumeDevice':
      case 'removeDevice':
        checkDmName(st.name);
        break;
      case 'deleteThin':
      case 'createThin':
        checkDmName(st.pool);
        checkThinId(st.deviceId);
        break;
      case 'createSnap':
        checkDmName(st.pool);
        checkThinId(st.deviceId);
        checkThinId(st.originId, 'origin thin id');
        break;
      case 'setTransactionId':
        checkDmName(st.pool);
        checkTransactionId(st.from, 'current transaction id');
        checkTransactionId(st.to, 'new transaction id');
        break;
      case 'mount':
        if (typeof st.device !== 'string' || typeof st.path !== 'string' || !st.path.startsWith('/')) throw new TypeError(`step ${i}: mount needs a device and an absolute path`);
        if (st.fsType !== 'ext4' && st.fsType !== 'xfs') throw new TypeError(`step ${i}: unsupported filesystem type ${String(st.fsType)}`);
        break;
    }
  });
}

function checkTable(table: TableLine[]): TableLine[] {
  if (!Array.isArray(table)) throw new TypeError('table must be an array of TableLine');
  for (const t of table) {
    if (!t || typeof t.type !== 'string' || typeof t.params !== 'string' || !Number.isSafeInteger(t.start) || !Number.isSafeInteger(t.length) || t.start < 0 || t.length < 0) {
      throw new ThinjournalError('ERR_DM_TABLE', `malformed table line ${JSON.stringify(t)}`);
    }
    if (Buffer.byteLength(t.type) >= 16) throw new ThinjournalError('ERR_DM_TABLE', `target type ${JSON.stringify(t.type)} is over 15 bytes`);
    if (t.params.includes('\0') || t.type.includes('\0')) throw new ThinjournalError('ERR_DM_TABLE', 'table line contains NUL');
  }
  return table;
}

function single(lines: TableLine[], type: string, name: string): TableLine {
  const line = lines.length === 1 ? lines[0] : undefined;
  if (!line || line.type !== type) {
    throw new ThinjournalError('ERR_DM_STATUS', `${name} is not a single ${type} target (has ${lines.map((l) => l.type).join(', ') || 'no table'})`, { device: name });
  }
  return line;
}

/** True when the error is ERR_KERNEL ENXIO (no such dm device). */
export function isNoDevice(err: unknown): boolean {
  return errnoOf(err) === 'ENXIO';
}
