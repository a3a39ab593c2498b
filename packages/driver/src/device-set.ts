/**
 * DeviceSet: Docker's devmapper DeviceSet (../shared/seed/devmapper-graphdriver-api.txt) on thinjournal's
 * layers. Every change goes through the reconciler's Engine — decide (model) → durable intent (journal) →
 * kernel (backend) → commit point → outcome — so the journal is the device set's metadata: there are no
 * per-device JSON files and no "pending transaction" file.
 *
 * What the driver adds over the Engine is Docker's policy: the embedded default (loopback files under home),
 * the base image (created on first init, its UUID and filesystem checked on later ones), observations the
 * model needs from the kernel (pool usage for dm.min_free_space, open counts for deferred removal and
 * deletion), and the background workers that finish deferred removals and deletions.
 *
 * Start-up order (open): options parsed (nothing touched if they are bad) → home 0700 → journal opened
 * exclusively (a second process gets ERR_JOURNAL_LOCKED) → state replayed → loop files attached (a new loop
 * number is journaled as PoolDevicesAttached before recovery needs it) → recovery (drift: ThinpoolInitError,
 * nothing changed) → pool and base image created on first use, or the base image's UUID and filesystem
 * verified → workers started.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, rmdirSync } from 'node:fs';
import { Observable, distinctUntilChanged, exhaustMap, from, interval, map, merge, startWith, filter } from 'rxjs';
import { ThinjournalError, type JournalRecord } from '@thinjournal/spec';
import { Journal } from '@thinjournal/journal';
import {
  BASE_HASH, checkHash, decide, evolve, deferredDeletionOrder, hasDevice, joinMountOptions, listDevices, parseOptions, effectiveOptions,
  type Command, type Device, type DmOptions, type OptionsEnv, type PoolUsage, type State,
} from '@thinjournal/model';
import { METADATA_BLOCK_BYTES, SECTOR_BYTES as SECTOR, fsNeedsGrow, requireKernelBackend, thinTableSpec, type Backend, type FsType } from '@thinjournal/dm';
import { Engine, type EngineOptions, type RecoveryResult } from '@thinjournal/reconciler';
import { preparePoolDevices } from './pool-devices.js';
import { ThinpoolInitError, driverClosed } from './errors.js';
import { checkHome, checkInside, devicePrefixFor, ensureDir, ensureDurableDir, ensureSparseFile, growSparseFile, layoutOf, type Layout } from './layout.js';

/** The seed's DiskUsage, in bytes. */
export interface DiskUsage {
  readonly used: number;
  readonly total: number;
  readonly available: number;
}

/** The seed's Status. */
export interface Status {
  readonly poolName: string;
  /** the block device holding the pool's data (a loop device for the embedded default). */
  readonly dataFile: string;
  /** the loopback file behind dataFile, or "". */
  readonly dataLoopback: string;
  readonly metadataFile: string;
  readonly metadataLoopback: string;
  readonly data: DiskUsage;
  readonly metadata: DiskUsage;
  readonly baseDeviceSize: number;
  readonly baseDeviceFS: string;
  readonly sectorSize: number;
  /** false: thinjournal does not wait for udev; it makes /dev/mapper nodes itself (packages/dm). */
  readonly udevSyncSupported: boolean;
  readonly deferredRemoveEnabled: boolean;
  readonly deferredDeleteEnabled: boolean;
  readonly deferredDeletedDeviceCount: number;
  /** dm.min_free_space, bytes of data space below which new devices are refused (Docker prints it too). */
  readonly minFreeSpace: number;
}

/** The seed's DevStatus. */
export interface DevStatus {
  readonly deviceId: number;
  readonly size: number;
  readonly transactionId: number;
  readonly sizeInSectors: number;
  readonly mappedSectors: number;
  readonly highestMappedSector: number;
}

export interface DeviceSetOptions {
  /** The device-mapper backend. Default: the kernel's; ERR_NATIVE_UNAVAILABLE, with the reason, where probeDeviceMapper finds none usable. */
  readonly backend?: Backend;
  /** Who the journal records as the actor of the driver's operations. Default "thinjournal-driver". */
  readonly actor?: string;
  /** First retry delay of a deferred removal/deletion (ms; doubles per retry up to the max). Default 1000. */
  readonly deferredRetryMs?: number;
  /** Longest retry delay (ms). Default 60000. */
  readonly deferredRetryMaxMs?: number;
  /** Run the deferred workers on timers (default true; tests call `cleanupDeferred()` themselves). */
  readonly workers?: boolean;
  /** Where DMLog messages at or below dm.libdm_log_level go. Default: stderr. */
  readonly logger?: (level: number, message: string) => void;
  /** Journal checkpoint interval in records (default 1000). */
  readonly checkpointEvery?: number;
  /** The Engine's protocol-point hook (crash tests and demos stop a process there); see EngineOptions.onPoint. */
  readonly onPoint?: EngineOptions['onPoint'];
}

/** What the kernel knows that decide needs, observed just before deciding. */
interface Observed {
  readonly openCount: number;
}

export class DeviceSet {
  readonly root: string;
  readonly layout: Layout;
  readonly options: DmOptions;
  readonly backend: Backend;
  private engine!: Engine;
  private journal!: Journal;
  private closed = false;
  /** shutdown/close has begun: new calls are refused (operations already in the Engine's queue finish first). */
  private closing = false;
  private readonly actor: string;
  private readonly logger: (level: number, message: string) => void;
  private readonly retry = new Map<string, { due: number; delay: number }>();
  private timer: NodeJS.Timeout | null = null;
  private workerRun: Promise<void> | null = null;
  /** What the recovery at open found and did (null when the journal had no pool yet). */
  recovery: RecoveryResult | null = null;
  /** Loop devices this process attached (detached again by shutdown). */
  private attachedLoops: string[] = [];

  private constructor(root: string, options: DmOptions, backend: Backend, private readonly opts: DeviceSetOptions) {
    this.root = root;
    this.layout = layoutOf(root);
    this.options = options;
    this.backend = backend;
    this.actor = opts.actor ?? 'thinjournal-driver';
    this.logger = opts.logger ?? ((level, message) => process.stderr.write(`devmapper(${level}): ${message}\n`));
  }

  /**
   * Docker's NewDeviceSet(root, doInit=true, options): parses the options, opens the journal, recovers,
   * and sets up the pool and the base image. Bad options: ERR_BAD_OPTION before anything is touched.
   */
  static async open(root: string, options: readonly string[] = [], opts: DeviceSetOptions = {}): Promise<DeviceSet> {
    const home = checkHome(root);
    if (!Array.isArray(options)) throw new TypeError('options must be an array of "dm.key=value" strings');
    const backend = opts.backend ?? defaultBackend();
    const parsed = parseOptions(options, await probeEnv(backend));
    if (parsed.directLvm) {
      throw new ThinpoolInitError(`dm.directlvm_device=${parsed.directLvm.device}: thinjournal does not set up LVM; create the thin pool with lvcreate and pass dm.thinpooldev`, { option: 'dm.directlvm_device' });
    }
    const ds = new DeviceSet(home, parsed, backend, opts);
    ensureDir(backend, home);
    ensureDir(backend, ds.layout.mnt);
    ds.journal = await Journal.open(ds.layout.journal, { actor: ds.actor });
    try {
      ds.engine = await Engine.open(ds.journal, backend, { actor: ds.actor, checkpointEvery: opts.checkpointEvery ?? 1000, ...(opts.onPoint ? { onPoint: opts.onPoint } : {}) });
      await ds.initDevmapper();
    } catch (err) {
      await ds.releaseAfterFailedOpen();
      if (err instanceof ThinjournalError && (err.code === 'ERR_THINPOOL_INIT' || err.code === 'ERR_BAD_OPTION' || err.code === 'ERR_JOURNAL_LOCKED')) throw err;
      throw new ThinpoolInitError(`setting up the thin pool failed: ${(err as Error).message}`, { cause: err });
    }
    if (opts.workers !== false) ds.scheduleWorker(opts.deferredRetryMs ?? 1000);
    return ds;
  }

  /**
   * A failed open leaves the journal closed. Loops it attached are detached unless a pool now uses them (a
   * pool recovery re-created stays up: the journal says it exists, and the next open adopts it).
   */
  private async releaseAfterFailedOpen(): Promise<void> {
    const pool = this.engine?.state.pool ?? null;
    const poolUp = pool ? await this.backend.info(pool.poolName).catch(() => null) : null;
    if (!poolUp) for (const loop of this.attachedLoops.splice(0)) await this.backend.detachLoop(loop).catch(() => {});
    await this.journal.close().catch(() => {});
  }

  // ---- the seed's exported fields ---------------------------------------------------------------------------

  private get state(): State {
    return this.engine.state;
  }
  /** The pool's (committed) transaction id. */
  get transactionId(): number {
    return this.state.txId;
  }
  /** The last device id handed out (allocation continues after it, with wrap). */
  get nextDeviceId(): number {
    return this.state.nextDeviceId;
  }
  get baseDeviceUuid(): string {
    return this.state.base?.uuid ?? '';
  }
  get baseDeviceFilesystem(): string {
    return this.state.base?.fs ?? '';
  }
  /** The journal this device set writes (read it, tail it; do not append to it). */
  get journalHandle(): Journal {
    return this.journal;
  }
  get poolName(): string {
    return this.state.pool?.poolName ?? '';
  }
  /** Device names are `<devicePrefix>-<hash>` (`-base` for the base image). */
  get devicePrefix(): string {
    return this.state.pool?.devicePrefix ?? '';
  }
  /** The pool's data block size in bytes (an adopted dm.thinpooldev pool's own, not dm.blocksize). */
  get poolBlockSize(): number {
    return this.state.pool?.blockSize ?? this.options.blockSize;
  }

  // ---- start-up ---------------------------------------------------------------------------------------------

  private async initDevmapper(): Promise<void> {
    const o = this.options;
    const s = this.state;
    if (s.pool) {
      this.checkCompatible();
      this.attachedLoops.push(...(await preparePoolDevices(this.engine, this.backend, this.layout, { actor: 'recovery' })).attached);
      if (o.thinPoolDevice !== null && !(await this.backend.info(s.pool.poolName))?.activeTable) {
        // An adopted pool is its owner's to activate (LVM: `lvchange -ay`); rebuilding its table from the
        // journal would bypass the owner's metadata. Refuse, change nothing.
        throw new ThinpoolInitError(`dm.thinpooldev=${o.thinPoolDevice} is not active; activate it (e.g. \`lvchange -ay\`) and start again`, { option: 'dm.thinpooldev' });
      }
      const r = await this.engine.recover({ actor: 'recovery' });
      this.recovery = r;
      if (r.plan.verdict === 'drift') {
        throw new ThinpoolInitError(`the journal and the kernel disagree (${r.plan.reason}); nothing was changed — see \`thinjournal verify --kernel --home ${this.root}\` and \`thinjournal recover --repair\``, { plan: r.plan });
      }
      if (r.plan.steps.length) this.dmLog(4, `recovery: ${r.plan.verdict} — ${r.plan.reason} (${r.completed} steps, ${r.skipped} already done)`);
    } else {
      await this.createPool();
    }
    if (!this.state.base) {
      await this.exec({ type: 'createBaseImage', size: o.baseSize, fs: o.fs, uuid: randomUUID() }, 'base image (dm.basesize, dm.fs)');
    } else {
      await this.verifyBaseDevice();
      await this.finishInterruptedGrows();
    }
  }

  /** Options that cannot change once the pool exists (Docker refuses the same changes). */
  private checkCompatible(): void {
    const o = this.options;
    const p = this.state.pool!;
    const base = this.state.base;
    if (o.loopback !== p.loopback) {
      throw new ThinpoolInitError(`the pool was set up ${p.loopback ? 'on loopback files' : `on ${p.dataDevice}`}; the options now ask for ${o.loopback ? 'loopback files' : 'block devices'} (dm.thinpooldev / dm.datadev cannot change)`);
    }
    if (o.thinPoolDevice !== null && o.thinPoolDevice !== p.poolName) {
      throw new ThinpoolInitError(`dm.thinpooldev=${o.thinPoolDevice}, but this home's journal uses pool ${p.poolName}`, { option: 'dm.thinpooldev' });
    }
    if (!o.loopback && o.dataDevice !== null && o.dataDevice !== p.dataDevice) {
      throw new ThinpoolInitError(`dm.datadev=${o.dataDevice}, but the pool's data device is ${p.dataDevice}`, { option: 'dm.datadev' });
    }
    if (base && o.given['dm.fs'] !== undefined && o.fs !== base.fs) {
      throw new ThinpoolInitError(`Base Device filesystem ${base.fs} is different from dm.fs=${o.fs}; the base image cannot change filesystem`, { option: 'dm.fs' });
    }
    const baseDev = this.state.devices.get(BASE_HASH);
    if (baseDev && o.baseSizeGiven && o.baseSize < baseDev.size) {
      throw new ThinpoolInitError(`dm.basesize=${o.baseSize} is smaller than the base image (${baseDev.size} bytes): it can only grow`, { option: 'dm.basesize' });
    }
  }

  /** A new pool's loopback files, created sparse and attached (re-using a loop this host already has on them). */
  private async attachNewLoopFiles(): Promise<{ data: string; metadata: string }> {
    const L = this.layout;
    ensureDir(this.backend, L.devicemapper);
    ensureSparseFile(this.backend, L.dataFile, this.options.loopDataSize);
    ensureSparseFile(this.backend, L.metadataFile, this.options.loopMetadataSize);
    return { data: await this.loopFor(L.dataFile), metadata: await this.loopFor(L.metadataFile) };
  }

  private async loopFor(file: string): Promise<string> {
    const found = await this.backend.findLoop(file);
    if (found) return found;
    const loop = await this.backend.attachLoop(file);
    this.attachedLoops.push(loop);
    return loop;
  }

  private async createPool(): Promise<void> {
    const o = this.options;
    const prefix = devicePrefixFor(this.root);
    if (o.loopback) {
      const { data, metadata } = await this.attachNewLoopFiles();
      // A metadata file that already holds a pool belongs to a journal we do not have: never format over it.
      // Except an empty one (transaction 0, no thin device): an init of ours that a crash cut short between
      // formatting the pool and journaling PoolInitialised — nothing in it to lose; the pool is adopted.
      const poolUp = (await this.backend.info(`${prefix}-pool`))?.activeTable === true;
      const held = poolUp ? null : await this.backend.readMetadata(metadata).then((m) => (m.transactionId === 0 && m.ids.length === 0 ? null : m), () => null);
      if (held) {
        throw new ThinpoolInitError(`${this.layout.metadataFile} holds a thin pool (transaction ${held.transactionId}, ${held.ids.length} devices) that this home's journal does not know; move it away, or rebuild the journal's pool with \`thinjournal replay\``);
      }
      await this.exec({
        type: 'initPool', poolName: `${prefix}-pool`, devicePrefix: prefix, dataDevice: data, metadataDevice: metadata,
        loopback: true, dataSize: o.loopDataSize, metadataSize: o.loopMetadataSize, blockSize: o.blockSize,
        options: effectiveOptions(o), transactionId: 0,
      }, 'embedded default: loopback pool under home');
      return;
    }
    if (o.thinPoolDevice !== null) {
      // An existing pool (e.g. LVM's): adopt it as it is; its table says where its devices are.
      const name = o.thinPoolDevice;
      if (!(await this.backend.info(name))) throw new ThinpoolInitError(`dm.thinpooldev=${name}: no such device-mapper device`, { option: 'dm.thinpooldev' });
      const table = await this.backend.poolTable(name);
      const st = await this.backend.poolStatusOk(name);
      if (st.usedDataBlocks > 0 || st.transactionId !== 0) {
        throw new ThinpoolInitError(`Unable to take ownership of thin-pool (${name}) that already has used data blocks (${st.usedDataBlocks}) or transactions (${st.transactionId}) this journal does not know`, { option: 'dm.thinpooldev' });
      }
      await this.exec({
        type: 'initPool', poolName: name, devicePrefix: prefix, dataDevice: table.dataDevice, metadataDevice: table.metadataDevice,
        loopback: false, dataSize: table.lengthSectors * SECTOR, metadataSize: st.totalMetadataBlocks * METADATA_BLOCK_BYTES,
        blockSize: table.dataBlockSectors * SECTOR, options: effectiveOptions(o), transactionId: st.transactionId,
      }, 'dm.thinpooldev: adopted an existing pool');
      return;
    }
    const dataDevice = o.dataDevice!;
    const metadataDevice = o.metadataDevice!;
    const poolUp = (await this.backend.info(`${prefix}-pool`))?.activeTable === true;
    const held = poolUp ? null : await this.backend.readMetadata(metadataDevice).then((m) => (m.transactionId === 0 && m.ids.length === 0 ? null : m), () => null);
    if (held) throw new ThinpoolInitError(`dm.metadatadev=${metadataDevice} holds a thin pool this journal does not know; refusing to format it`, { option: 'dm.metadatadev' });
    await this.exec({
      type: 'initPool', poolName: `${prefix}-pool`, devicePrefix: prefix, dataDevice, metadataDevice, loopback: false,
      dataSize: await this.backend.blockDeviceSize(dataDevice), metadataSize: await this.backend.blockDeviceSize(metadataDevice),
      blockSize: o.blockSize, options: effectiveOptions(o), transactionId: 0,
    }, 'dm.datadev / dm.metadatadev');
  }

  /**
   * Docker's verifyBaseDeviceUUIDFS: the base image's filesystem must still carry the UUID and type the
   * journal recorded (a different one means another pool or a re-made base: refuse). Then dm.basesize growth.
   */
  /**
   * Read-only dm name for the base image check. Device names are `<prefix>-<hash>`, so `<prefix>:verify` can
   * never be one of them. It is not journaled: it exists only inside verifyBaseDevice, and one a crash left
   * behind is removed at the next start (the name is reserved for exactly this).
   */
  private get verifyName(): string {
    return `${this.state.pool!.devicePrefix}:verify`;
  }

  /**
   * Docker's verifyBaseDeviceUUIDFS, at every start: the base image's filesystem must still carry the UUID and
   * type the journal recorded (another one means another pool, or a base re-made behind the journal's back:
   * refuse). The base is read through a read-only activation of its thin id, so the check costs no journal
   * records. Then a base growth a crash interrupted is finished, and dm.basesize growth done.
   */
  private async verifyBaseDevice(): Promise<void> {
    const base = this.state.base!;
    const baseDev = this.state.devices.get(BASE_HASH)!;
    const name = this.verifyName;
    if (await this.backend.info(name)) await this.backend.remove(name);
    await this.backend.activateThin(name, thinTableSpec(this.backend.devicePath(this.poolName), baseDev.deviceId, baseDev.size), { readOnly: true });
    try {
      const dev = this.backend.devicePath(name);
      const fs = await this.backend.probeFsType(dev).catch((err) => { throw new ThinpoolInitError(`the base image holds no filesystem (the journal says ${base.fs}, UUID ${base.uuid})`, { cause: err }); });
      if (fs !== base.fs) throw new ThinpoolInitError(`the base image's filesystem is ${fs}; the journal says ${base.fs}`);
      const uuid = await this.backend.fsUuid(dev);
      if (uuid !== base.uuid) throw new ThinpoolInitError(`the base image's UUID is ${uuid}; the journal says ${base.uuid}: this is not the pool this journal describes`);
    } finally {
      await this.backend.remove(name);
    }
    if (baseDev.mounts.some((m) => m.path === this.growMountPoint)) await this.finishGrowBase();
    if (this.options.baseSizeGiven && this.options.baseSize > this.state.devices.get(BASE_HASH)!.size) await this.growBase(this.options.baseSize);
  }

  /** Where the base image is mounted while its filesystem grows: inside home, outside mnt/ (no layer id can name it). */
  private get growMountPoint(): string {
    return `${this.root}/base-grow`;
  }

  /**
   * Docker's checkGrowBaseDeviceFS. Crash-safe by order: the base is mounted first (journaled), then the thin
   * device grows (DeviceResized, table reload), then the filesystem (resize2fs / xfs_growfs: a no-op when
   * there is nothing to grow), then it is unmounted. A start that finds the base still mounted at the grow
   * mount point (recovery re-mounted it) finishes the job: grow, unmount; then compares sizes again.
   */
  private async growBase(size: number): Promise<void> {
    const mp = this.growMountPoint;
    ensureDir(this.backend, mp);
    await this.exec({ type: 'mountDevice', hash: BASE_HASH, path: mp, options: this.mountOptions('') }, 'grow the base filesystem');
    await this.exec({ type: 'resizeDevice', hash: BASE_HASH, size }, 'dm.basesize grew');
    await this.finishGrowBase();
  }

  private async finishGrowBase(): Promise<void> {
    const mp = this.growMountPoint;
    try {
      const name = this.state.devices.get(BASE_HASH)!.dmName!;
      await this.backend.growFs(this.backend.devicePath(name), mp, this.state.base!.fs as FsType);
    } finally {
      await this.exec({ type: 'unmountDevice', hash: BASE_HASH, path: mp, openCount: 0 }, 'grow the base filesystem');
      rmdirSync(mp);
    }
  }

  /** Runs `fn` with the device active, activating it (journaled) for the call if it was not. */
  private async withActive<T>(hash: string, why: string, fn: (devicePath: string) => Promise<T>): Promise<T> {
    const was = this.state.devices.get(hash)?.active === true;
    if (!was) await this.exec({ type: 'activateDevice', hash }, why);
    try {
      return await fn(this.backend.devicePath(this.state.devices.get(hash)!.dmName!));
    } finally {
      if (!was) await this.exec({ type: 'deactivateDevice', hash, openCount: 0, deferredRemoval: false }, why);
    }
  }

  // ---- the seed's methods -----------------------------------------------------------------------------------

  private live(): void {
    if (this.closed || this.closing) throw driverClosed();
  }

  private exec(command: Command, reason?: string): Promise<JournalRecord[]> {
    return this.engine.execute(command, reason === undefined ? {} : { reason });
  }

  /** Pool usage for dm.min_free_space, as the kernel reports it now. */
  private async usage(): Promise<PoolUsage> {
    const st = await this.backend.poolStatusOk(this.poolName);
    return { dataUsed: st.usedDataBlocks, dataTotal: st.totalDataBlocks, metadataUsed: st.usedMetadataBlocks, metadataTotal: st.totalMetadataBlocks };
  }

  private async observe(d: Device): Promise<Observed> {
    if (!d.active || !d.dmName) return { openCount: 0 };
    const info = await this.backend.info(d.dmName);
    // Our own mounts hold the device open once (one superblock, however many mount points).
    return { openCount: Math.max(0, (info?.openCount ?? 0) - (d.mounts.length > 0 ? 1 : 0)) };
  }

  private device(hash: string): Device {
    const d = this.state.devices.get(hash);
    if (!d || d.deletionDeferred) throw new ThinjournalError('ERR_DEVICE_NOT_FOUND', `unknown device ${JSON.stringify(hash)}`, { hash });
    return d;
  }

  /**
   * Docker's AddDevice(hash, baseHash, storageOpt): a snapshot of `baseHash` ("" = the base image), of the
   * parent's size or `size` (≥ it). Refused with ERR_NO_SPACE when the pool is below dm.min_free_space.
   */
  async addDevice(hash: string, baseHash: string, storageOpt: { size?: number } = {}): Promise<void> {
    this.live();
    checkHash(hash);
    checkHash(baseHash, { allowBase: true, what: 'base hash' });
    const usage = await this.usage();
    await this.exec({ type: 'addDevice', hash, baseHash, ...(storageOpt.size !== undefined ? { size: storageOpt.size } : {}), usage, minFreeSpacePercent: this.options.minFreeSpacePercent });
    const parent = this.state.devices.get(baseHash)!;
    // Docker's growFS: a snapshot larger than its parent gets its filesystem grown to its size.
    if (this.state.devices.get(hash)!.size > parent.size && parent.initialised) await this.growNewDevice(hash);
  }

  // ---- growing a snapshot's filesystem ----------------------------------------------------------------------
  //
  // A snapshot created larger than its parent carries the parent's (smaller) filesystem until it is grown.
  // Invariant: a device's filesystem is never left smaller than its device for good. No journal record says
  // "grown": whether a grow is due is read from the filesystem itself (its superblock against the device's
  // size, fsNeedsGrow), and growing to the device's size is a no-op when there is nothing to grow, so every
  // step may be repeated after a crash:
  //  1. addDevice commits the snapshot at its full size (a crash here: step 4 catches it);
  //  2. it is mounted at <home>/grow/<hash> (journaled: DeviceActivated, DeviceMounted);
  //  3. resize2fs / xfs_growfs, when the superblock says the filesystem is smaller;
  //  4. unmounted and deactivated (journaled). A start that finds a device mounted at its grow mount point
  //     (a crash in 2–4; after a reboot recovery re-mounts it first) runs 3 and 4 again; and every first
  //     mount of a device (mountDevice) checks its superblock and grows it when it is smaller.
  // A grow the filesystem lost in a power cut is caught the same way: the superblock is the record.

  /** Where a device is mounted while its filesystem grows: inside home, outside mnt/ (no layer id can name it). */
  private growMountPointOf(hash: string): string {
    return `${this.root}/grow/${hash}`;
  }

  /** A snapshot just created larger than its parent: mounted at its grow mount point, grown, unmounted, deactivated. */
  private async growNewDevice(hash: string): Promise<void> {
    await this.mountForGrow(hash);
    await this.finishGrow(hash, true);
  }

  /**
   * An active device that nothing mounts: when its superblock says its filesystem is smaller than the device,
   * it is grown at its grow mount point and unmounted again (left active). Read before any mount, so the
   * superblock is the one on the device (xfs writes its superblock past the block device's page cache).
   */
  private async growBeforeMount(hash: string): Promise<void> {
    const d = this.state.devices.get(hash)!;
    const g = await this.backend.fsGeometry(this.backend.devicePath(d.dmName!)).catch((err) => {
      if (err instanceof ThinjournalError && err.code === 'ERR_FS_UNKNOWN') return null; // the mount says what is wrong
      throw err;
    });
    if (!g || !fsNeedsGrow(g, d.size)) return;
    await this.mountForGrow(hash);
    await this.finishGrow(hash, false);
  }

  private async mountForGrow(hash: string): Promise<void> {
    const mp = this.growMountPointOf(hash);
    // The directory outlives a power cut (parent directories fsynced): recovery re-mounts the device there.
    ensureDurableDir(this.backend, `${this.root}/grow`);
    ensureDurableDir(this.backend, mp);
    await this.exec({ type: 'mountDevice', hash, path: mp, options: this.mountOptions('') }, 'grow the filesystem to the device\'s size');
  }

  /** Steps 3 and 4: grow (when the superblock says it is smaller), unmount from the grow mount point, and deactivate if asked. */
  private async finishGrow(hash: string, deactivate: boolean): Promise<void> {
    const mp = this.growMountPointOf(hash);
    try {
      const d = this.state.devices.get(hash)!;
      const dev = this.backend.devicePath(d.dmName!);
      const g = await this.backend.fsGeometry(dev);
      if (fsNeedsGrow(g, d.size)) {
        this.dmLog(4, `growing the ${g.type} filesystem of ${JSON.stringify(hash)} from ${g.blocks * g.blockSize} bytes to its device's ${d.size}`);
        await this.backend.growFs(dev, mp, this.state.base!.fs as FsType);
      }
    } finally {
      const why = 'grow the filesystem to the device\'s size';
      if (!deactivate) await this.exec({ type: 'unmountDevice', hash, path: mp, deactivate: false }, why);
      else {
        await this.unmountThenDeactivate(hash, mp, why).catch((err) => {
          // Unmounted but still open elsewhere: it stays active, harmlessly; the grow is what matters here.
          if (!(err instanceof ThinjournalError && err.code === 'ERR_DEVICE_BUSY')) throw err;
          this.dmLog(3, (err as Error).message);
        });
      }
      if (existsSync(mp)) rmdirSync(mp);
    }
  }

  /** Devices a crash left mounted at their grow mount point (recovery re-mounted them after a reboot): grow, unmount. */
  private async finishInterruptedGrows(): Promise<void> {
    for (const d of [...this.state.devices.values()]) {
      if (d.mounts.some((m) => m.path === this.growMountPointOf(d.hash))) await this.finishGrow(d.hash, d.mounts.length === 1);
    }
  }

  /**
   * Docker's DeleteDevice(hash, syncDelete): deactivates the device (deferred removal when it is open and
   * dm.use_deferred_removal is on), then deletes it from the pool. When it is busy: with
   * dm.use_deferred_deletion and !syncDelete it is marked (DeletionDeferred) and the worker deletes it
   * later (success now, as Docker); otherwise ERR_DEVICE_BUSY.
   */
  async deleteDevice(hash: string, syncDelete = false): Promise<void> {
    this.live();
    checkHash(hash, { allowBase: true });
    let d = this.state.devices.get(hash);
    if (!d) throw new ThinjournalError('ERR_DEVICE_NOT_FOUND', `unknown device ${JSON.stringify(hash)}`, { hash });
    this.precheckDelete(d, syncDelete);
    if (d.removalDeferred && d.dmName && !(await this.backend.info(d.dmName))) {
      // The kernel finished the deferred removal (last close): record it, then the device is not busy.
      await this.exec({ type: 'deactivateDevice', hash, openCount: 0 }, 'deferred removal completed');
      d = this.state.devices.get(hash)!;
    }
    if (this.options.blkDiscard && !d.deletionDeferred && d.mounts.length === 0 && !d.removalDeferred) {
      await this.discard(d);
      d = this.state.devices.get(hash)!;
    }
    if (d.active && d.mounts.length === 0 && !d.removalDeferred) {
      const { openCount } = await this.observe(d);
      if (openCount === 0 || this.options.useDeferredRemoval) {
        await this.exec({ type: 'deactivateDevice', hash, openCount, deferredRemoval: this.options.useDeferredRemoval });
      }
    }
    const now = this.state.devices.get(hash)!;
    const { openCount } = await this.observe(now);
    await this.exec({ type: 'deleteDevice', hash, syncDelete, busy: openCount > 0, deferredDeletion: this.options.useDeferredDeletion });
    if (this.state.devices.get(hash)?.deletionDeferred) this.kickWorker();
  }

  /**
   * The refusals of a delete that do not depend on the device being busy (the base image, snapshots of it,
   * a mount, the pending transaction), decided before anything is done: the pure decide on the state as it
   * will be once the device is deactivated. Nothing is discarded or deactivated for a delete that is refused.
   */
  private precheckDelete(d: Device, syncDelete: boolean): void {
    let s = this.state;
    if (d.active && d.mounts.length === 0) {
      try {
        s = evolve(s, { type: 'DeviceDeactivated', txId: s.txId, body: { hash: d.hash, deferred: false } });
      } catch {
        s = this.state; // e.g. part of the pending transaction: decide on the state as it is says so
      }
    }
    decide(s, { type: 'deleteDevice', hash: d.hash, syncDelete, busy: false, deferredDeletion: this.options.useDeferredDeletion });
  }

  /**
   * dm.blkdiscard (Docker's issueDiscard): before a device is deleted, BLKDISCARD over all of it, so dm-thin
   * unmaps its blocks and passes the discards down — a loopback data file gets its holes back (deleting a
   * thin device frees its blocks in the pool's metadata, but discards nothing on the data device). Skipped for
   * an open device; a failure is logged, never fatal (as in Docker). The activation it needs is journaled.
   */
  private async discard(d: Device): Promise<void> {
    if ((await this.observe(d)).openCount > 0) return;
    try {
      await this.withActive(d.hash, 'dm.blkdiscard before delete', (dev) => this.backend.discard(dev, 0, d.size));
    } catch (err) {
      this.dmLog(3, `discard of ${JSON.stringify(d.hash)} before its deletion failed: ${(err as Error).message}`);
    }
  }

  /** Docker's MountDevice(hash, path, mountLabel): activates if needed and mounts at `path` (inside home). */
  async mountDevice(hash: string, mountPath: string, mountLabel = ''): Promise<void> {
    this.live();
    checkHash(hash, { allowBase: true });
    // Mount points live under <home>/mnt: never over the journal or the loop files.
    const p = checkInside(this.layout.mnt, mountPath, 'mount path');
    this.device(hash);
    const options = this.mountOptions(mountLabel);
    for (const other of this.state.devices.values()) {
      if (other.hash !== hash && other.mounts.some((m) => m.path === p)) {
        throw new ThinjournalError('ERR_DEVICE_BUSY', `${p} is the mount point of device ${JSON.stringify(other.hash)}`, { hash, path: p });
      }
    }
    const mine = this.state.devices.get(hash)!.mounts.some((m) => m.path === p);
    if (!mine && (await this.backend.mounted(p))) {
      throw new ThinjournalError('ERR_DEVICE_BUSY', `something the journal does not know is mounted at ${p}`, { hash, path: p });
    }
    ensureDir(this.backend, p);
    const before = this.state.devices.get(hash)!;
    if (!mine && before.mounts.length === 0) {
      // The device's first mount: a filesystem left smaller than its device (a grow a crash cut short, see
      // growNewDevice) is grown first. The activation this needs is undone if the grow or the mount fails.
      const wasActive = before.active && !before.removalDeferred;
      try {
        await this.exec({ type: 'activateDevice', hash });
        await this.growBeforeMount(hash);
        await this.exec({ type: 'mountDevice', hash, path: p, options });
      } catch (err) {
        const d = this.state.devices.get(hash);
        if (!wasActive && d?.active && d.mounts.length === 0) await this.exec({ type: 'deactivateDevice', hash, openCount: 0 }, 'the mount failed; undone').catch(() => {});
        throw err;
      }
    } else {
      await this.exec({ type: 'mountDevice', hash, path: p, options });
    }
    const retries = this.options.xfsNospaceMaxRetries;
    if (retries !== null && this.state.base?.fs === 'xfs') {
      // Docker's xfsSetNospaceRetries: a mount whose limit cannot be set is undone and the error returned.
      const d = this.state.devices.get(hash)!;
      try {
        await this.backend.xfsSetNospaceMaxRetries(this.backend.devicePath(d.dmName!), retries);
      } catch (err) {
        await this.exec({ type: 'unmountDevice', hash, path: p, openCount: 0 }, 'dm.xfs_nospace_max_retries could not be set').catch(() => {});
        throw err;
      }
    }
  }

  private mountOptions(mountLabel: string): string {
    if (typeof mountLabel !== 'string') throw new TypeError('mountLabel must be a string');
    let o = joinMountOptions(this.state.base?.fs === 'xfs' ? 'nouuid' : '', this.options.mountOptions);
    if (mountLabel !== '') {
      if (/[\s"\\\0]/.test(mountLabel)) throw new ThinjournalError('ERR_BAD_OPTION', `mount label ${JSON.stringify(mountLabel)} contains whitespace, a quote or a backslash`, { option: 'mountLabel', text: mountLabel });
      o = joinMountOptions(o, `context="${mountLabel}"`);
    }
    return o;
  }

  /**
   * Docker's UnmountDevice(hash, mountPath): unmounts, and deactivates after the last mount — deferred when the
   * device is still open and dm.use_deferred_removal is on. Still open with deferred removal off: the unmount
   * stands, the device stays active, and the call fails with ERR_DEVICE_BUSY.
   */
  async unmountDevice(hash: string, mountPath: string): Promise<void> {
    this.live();
    checkHash(hash, { allowBase: true });
    const d = this.state.devices.get(hash);
    if (!d) throw new ThinjournalError('ERR_DEVICE_NOT_FOUND', `unknown device ${JSON.stringify(hash)}`, { hash });
    await this.unmountThenDeactivate(hash, mountPath);
  }

  /**
   * Unmounts (journaled), then, after the last mount, deactivates with the open count observed *after* the
   * unmount. Observed before it, our own mount hides every other holder of the same superblock — a mount of
   * it leaked into another mount namespace keeps the device open once our mount is gone, and a plain remove
   * then fails with EBUSY; observed after, such a holder is seen and the removal is deferred (or refused,
   * ERR_DEVICE_BUSY, when deferred removal is off). A crash between the two steps leaves an unmounted,
   * active device: the journal still says what the kernel has.
   */
  private async unmountThenDeactivate(hash: string, mountPath: string, reason?: string): Promise<void> {
    await this.exec({ type: 'unmountDevice', hash, path: mountPath, deactivate: false }, reason);
    const d = this.state.devices.get(hash)!;
    if (d.mounts.length > 0 || !d.active || d.removalDeferred) return;
    const { openCount } = await this.observe(d);
    try {
      await this.exec({ type: 'deactivateDevice', hash, openCount, deferredRemoval: this.options.useDeferredRemoval }, reason);
    } catch (err) {
      if (err instanceof ThinjournalError && err.code === 'ERR_DEVICE_BUSY') {
        throw new ThinjournalError('ERR_DEVICE_BUSY', `device ${JSON.stringify(hash)} was unmounted from ${mountPath}, but it is still open (${openCount} holder(s): another process, or a mount of it in another mount namespace) and dm.use_deferred_removal is off: it stays active`, { hash, path: mountPath, openCount, cause: err });
      }
      throw err;
    }
    if (this.state.devices.get(hash)?.removalDeferred) this.kickWorker();
  }

  /**
   * Docker's ResizePool(size): the pool's data grows to `size` bytes. Block devices must already be that
   * large; a loopback pool's data file is grown here first.
   */
  async resizePool(size: number): Promise<void> {
    this.live();
    const p = this.state.pool!;
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0) throw new ThinjournalError('ERR_BAD_SIZE', `pool size ${String(size)} is not a positive safe integer`, { value: size });
    if (size < p.dataSize) throw new ThinjournalError('ERR_BAD_SIZE', `pool size ${size} is smaller than the current ${p.dataSize} (a pool only grows)`, { value: size });
    if (decide(this.state, { type: 'resizePool', dataSize: size }).length === 0) return; // refusals throw here, before any file grows
    if (p.loopback) {
      // Docker's ResizePool on loopback: the data file grows, the loop device takes the new size, then the
      // pool's table is reloaded (the Engine's resizePool transaction). A file grown for a resize that then
      // fails stays grown: sparse, harmless, and the next resize finds it so.
      growSparseFile(this.backend, this.layout.dataFile, size);
      const now = await this.backend.resizeLoop(p.dataDevice);
      if (now < size) throw new ThinjournalError('ERR_BAD_SIZE', `the data loop device is ${now} bytes after growing its file to ${size}`, { value: size });
    } else {
      const now = await this.backend.blockDeviceSize(p.dataDevice);
      if (now < size) throw new ThinjournalError('ERR_BAD_SIZE', `the data device ${p.dataDevice} is ${now} bytes; grow it to ${size} first`, { value: size });
    }
    await this.exec({ type: 'resizePool', dataSize: size });
  }

  /** Docker's Status(). */
  async status(): Promise<Status> {
    this.live();
    const s = this.state;
    const p = s.pool!;
    const st = await this.backend.poolStatusOk(p.poolName);
    const bs = p.blockSize;
    const data = usage(st.usedDataBlocks * bs, st.totalDataBlocks * bs);
    const metadata = usage(st.usedMetadataBlocks * METADATA_BLOCK_BYTES, st.totalMetadataBlocks * METADATA_BLOCK_BYTES);
    return {
      poolName: p.poolName,
      dataFile: p.dataDevice,
      dataLoopback: p.loopback ? this.layout.dataFile : '',
      metadataFile: p.metadataDevice,
      metadataLoopback: p.loopback ? this.layout.metadataFile : '',
      data, metadata,
      baseDeviceSize: s.devices.get(BASE_HASH)?.size ?? 0,
      baseDeviceFS: s.base?.fs ?? '',
      sectorSize: SECTOR,
      udevSyncSupported: false,
      deferredRemoveEnabled: this.options.useDeferredRemoval,
      deferredDeleteEnabled: this.options.useDeferredDeletion,
      deferredDeletedDeviceCount: s.deferredDeletions.length,
      minFreeSpace: Math.floor((st.totalDataBlocks * this.options.minFreeSpacePercent) / 100) * bs,
    };
  }

  /** Docker's GetDeviceStatus(hash): the thin device's mapping, activating it for the read if needed. */
  async getDeviceStatus(hash: string): Promise<DevStatus> {
    this.live();
    checkHash(hash, { allowBase: true });
    const d = this.device(hash);
    const ts = await this.withActive(hash, 'device status', async () => this.backend.thinStatus(this.state.devices.get(hash)!.dmName!));
    const mapped = ts.state === 'active' ? ts : { mappedSectors: 0, highestMappedSector: null };
    return {
      deviceId: d.deviceId, size: d.size, transactionId: d.txId, sizeInSectors: d.size / SECTOR,
      mappedSectors: mapped.mappedSectors, highestMappedSector: mapped.highestMappedSector ?? 0,
    };
  }

  /** Docker's List(): device hashes (not those awaiting deferred deletion), the base image ("") included. */
  list(): string[] {
    this.live();
    return listDevices(this.state);
  }

  /** Docker's HasDevice(hash). */
  hasDevice(hash: string): boolean {
    this.live();
    return typeof hash === 'string' && hasDevice(this.state, hash);
  }

  /** A device's journal view (id, size, parent, activation, mounts), or undefined. */
  deviceInfo(hash: string): Device | undefined {
    this.live();
    return this.state.devices.get(hash);
  }

  /** Docker's CreateBaseImage(): the base image, if there is none (ERR_DEVICE_EXISTS otherwise). */
  async createBaseImage(): Promise<void> {
    this.live();
    if (this.state.base) throw new ThinjournalError('ERR_DEVICE_EXISTS', 'the base image exists', { hash: BASE_HASH });
    await this.exec({ type: 'createBaseImage', size: this.options.baseSize, fs: this.options.fs, uuid: randomUUID() });
  }

  /**
   * Docker's CheckTransactionID(): the kernel pool's transaction id must be the journal's. If not, recovery
   * runs (roll forward or back, as journal-spec/protocol.md says); drift is ERR_DRIFT and changes nothing.
   */
  async checkTransactionId(): Promise<void> {
    this.live();
    const st = await this.backend.poolStatusOk(this.poolName);
    if (st.transactionId === this.state.txId && !this.state.pending) return;
    const r = await this.engine.recover({ actor: 'recovery' });
    if (r.plan.verdict === 'drift') {
      throw new ThinjournalError('ERR_DRIFT', `pool transaction id ${st.transactionId}, journal ${this.state.txId}: ${r.plan.reason}`, { plan: r.plan });
    }
  }

  /** Docker's DataDevicePath(): the data loopback file, or the data block device. */
  dataDevicePath(): string {
    const p = this.state.pool!;
    return p.loopback ? this.layout.dataFile : p.dataDevice;
  }
  /** Docker's MetadataDevicePath(). */
  metadataDevicePath(): string {
    const p = this.state.pool!;
    return p.loopback ? this.layout.metadataFile : p.metadataDevice;
  }

  /**
   * Docker's DMLog(level, file, line, dmError, message): messages at or below dm.libdm_log_level (2 fatal …
   * 7 debug) go to the logger. thinjournal has no libdevmapper; its own notes (recovery verdicts, deferred
   * work) are routed through here.
   */
  dmLog(level: number, message: string, file = '', line = 0, dmError = 0): void {
    if (level > this.options.libdmLogLevel) return;
    this.logger(level, `${file ? `${file}:${line} ` : ''}${dmError ? `(errno ${dmError}) ` : ''}${message}`);
  }

  /** Every journaled record from now on (or from `fromSeq`), live; completes at shutdown. */
  events$(fromSeq?: number): Observable<JournalRecord> {
    return this.journal.tail(fromSeq ?? this.journal.head().seq + 1);
  }

  /** Pool status, emitted when usage changes: after journaled operations and every `pollMs` for data writes. */
  status$(pollMs = 5000): Observable<Status> {
    return merge(this.events$().pipe(map(() => 0)), interval(pollMs)).pipe(
      startWith(0),
      filter(() => !this.closed),
      exhaustMap(() => from(this.status())),
      distinctUntilChanged((a, b) => a.data.used === b.data.used && a.metadata.used === b.metadata.used && a.data.total === b.data.total && a.deferredDeletedDeviceCount === b.deferredDeletedDeviceCount),
    );
  }

  // ---- for services built on the device set (the containerd snapshotter) ------------------------------------

  /** The model's state now (read and drop it: the next operation replaces it). */
  get modelState(): State {
    this.live();
    return this.state;
  }

  /** Runs a model command through the Engine: decide, then the transaction protocol for pool changes. */
  execute(command: Command, reason?: string): Promise<JournalRecord[]> {
    this.live();
    return this.exec(command, reason);
  }

  /** How often the kernel has the device open, besides this device set's own mounts (0 when not active). */
  async openCount(hash: string): Promise<number> {
    this.live();
    const d = this.state.devices.get(hash);
    return d ? (await this.observe(d)).openCount : 0;
  }

  /** One pass of the deferred work on request, every device retried now whatever its backoff (see cleanupDeferred). */
  cleanupDeferredNow(): Promise<number | null> {
    this.live();
    this.retry.clear();
    return this.cleanupDeferred();
  }

  /** Pool usage as the kernel reports it now (the observation dm.min_free_space decides on). */
  poolUsage(): Promise<PoolUsage> {
    this.live();
    return this.usage();
  }

  // ---- deferred removal and deletion ------------------------------------------------------------------------

  private scheduleWorker(delayMs: number): void {
    if (this.closed || this.opts.workers === false) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.cleanupDeferred().catch((err) => this.dmLog(3, `deferred work: ${(err as Error).message}`)).then((next) => this.scheduleWorker(next ?? this.opts.deferredRetryMaxMs ?? 60_000));
    }, delayMs);
    this.timer.unref();
  }

  private kickWorker(): void {
    this.scheduleWorker(this.opts.deferredRetryMs ?? 1000);
  }

  /**
   * One pass of Docker's deferred work: completed deferred removals are recorded (the kernel removed the dm
   * device at its last close), then devices awaiting deferred deletion are retried — snapshots before their
   * parents — each with its own backoff. Returns the delay until the next one is due (ms), or null if none is
   * waiting.
   */
  cleanupDeferred(now = Date.now()): Promise<number | null> {
    if (this.workerRun) return this.workerRun.then(() => this.cleanupDeferred(now));
    const run = (async () => {
      const first = this.opts.deferredRetryMs ?? 1000;
      const max = this.opts.deferredRetryMaxMs ?? 60_000;
      for (const d of [...this.state.devices.values()].filter((x) => x.removalDeferred)) {
        if (this.closed) return null;
        try {
          const info = d.dmName ? await this.backend.info(d.dmName) : null;
          if (!info) await this.exec({ type: 'deactivateDevice', hash: d.hash, openCount: 0 }, 'deferred removal completed');
        } catch (err) {
          this.dmLog(3, `recording the deferred removal of ${JSON.stringify(d.hash)}: ${(err as Error).message}`); // the next pass retries
        }
      }
      let next: number | null = null;
      for (const hash of deferredDeletionOrder(this.state)) {
        if (this.closed) return null;
        const r = this.retry.get(hash) ?? { due: now, delay: first };
        if (r.due > now) {
          next = Math.min(next ?? Infinity, r.due - now);
          continue;
        }
        try {
          const d = this.state.devices.get(hash)!;
          if (d.active && !d.mounts.length && !d.removalDeferred) {
            const { openCount } = await this.observe(d);
            if (openCount === 0) await this.exec({ type: 'deactivateDevice', hash, openCount: 0 }, 'deferred deletion');
          }
          const cur = this.state.devices.get(hash)!;
          const { openCount } = await this.observe(cur);
          await this.exec({ type: 'retryDeferredDeletion', hash, busy: openCount > 0 }, 'deferred deletion retry');
        } catch (err) {
          this.dmLog(3, `deferred deletion of ${JSON.stringify(hash)}: ${(err as Error).message}`);
        }
        if (this.state.devices.has(hash)) {
          const delay = Math.min(max, r.delay * 2);
          this.retry.set(hash, { due: now + r.delay, delay });
          next = Math.min(next ?? Infinity, r.delay);
        } else {
          this.retry.delete(hash);
        }
      }
      return next;
    })();
    this.workerRun = run.then(() => {}, () => {}).finally(() => { this.workerRun = null; });
    return run;
  }

  // ---- shutdown -------------------------------------------------------------------------------------------

  /** Refuses new calls from now on and stops the deferred worker (waiting for a pass in flight); false if already closing. */
  private async beginClosing(): Promise<boolean> {
    if (this.closed || this.closing) return false;
    this.closing = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.workerRun) await this.workerRun;
    return true;
  }

  /**
   * Closes the journal and stops the workers, leaving the kernel as it is (devices active, layers mounted,
   * the pool up): what a command-line call does when it is done, so the next process finds the kernel as
   * the journal says. Deferred work left waiting is picked up by the next open's worker.
   */
  async close(): Promise<void> {
    if (!(await this.beginClosing())) return;
    this.closed = true;
    await this.journal.close();
  }

  /**
   * Docker's Shutdown(): stops the workers, unmounts and deactivates every device this device set mounted or
   * activated, removes the pool it created (not an adopted dm.thinpooldev) and detaches its loop devices, then
   * closes the journal. Every step is journaled, so the next open finds the kernel as the journal says.
   */
  async shutdown(): Promise<void> {
    if (!(await this.beginClosing())) return;
    const s = this.state;
    let firstError: unknown = null;
    const attempt = async (fn: () => Promise<unknown>) => { try { await fn(); } catch (err) { firstError ??= err; } };
    for (const d of [...s.devices.values()].sort((a, b) => (a.hash < b.hash ? -1 : 1))) {
      for (const m of d.mounts) await attempt(() => this.exec({ type: 'unmountDevice', hash: d.hash, path: m.path, openCount: 0, deactivate: false }, 'shutdown'));
    }
    for (const d of this.state.devices.values()) {
      if (d.active) await attempt(async () => this.exec({ type: 'deactivateDevice', hash: d.hash, openCount: (await this.observe(d)).openCount, deferredRemoval: this.options.useDeferredRemoval }, 'shutdown'));
    }
    const p = this.state.pool;
    if (p && this.options.thinPoolDevice === null && firstError === null) {
      await attempt(async () => { if (await this.backend.info(p.poolName)) await this.backend.remove(p.poolName); });
      if (p.loopback) {
        for (const dev of [p.dataDevice, p.metadataDevice]) await attempt(() => this.backend.detachLoop(dev));
      }
    }
    this.closed = true;
    await this.journal.close();
    if (firstError) throw firstError;
  }
}

function usage(used: number, total: number): DiskUsage {
  return { used, total, available: total - used };
}

/** The kernel's backend where device-mapper answers (probeDeviceMapper), else ERR_NATIVE_UNAVAILABLE saying why. */
function defaultBackend(): Backend {
  return requireKernelBackend('pass a ModelBackend to run on the model');
}

/** What Docker probes before parsing options: xfs support and the dm version for deferred removal. */
async function probeEnv(b: Backend): Promise<OptionsEnv> {
  if (!b.supports.hostEnvironment) return { xfsSupported: true, deferredRemovalSupported: true };
  const v = await b.version();
  // Docker's check: mkfs.xfs present, and xfs in /proc/filesystems — after `modprobe xfs` if it is not there
  // yet (a module is listed only once loaded).
  const listed = () => { try { return /\txfs$/m.test(readFileSync('/proc/filesystems', 'utf8')); } catch { return false; } };
  const mkfsXfs = ['/usr/sbin', '/sbin', '/usr/bin', '/bin', ...(process.env.PATH ?? '').split(':')].some((d) => d !== '' && existsSync(`${d}/mkfs.xfs`));
  let xfs = mkfsXfs && listed();
  if (mkfsXfs && !xfs) {
    await new Promise<void>((resolve) => execFile('modprobe', ['-q', 'xfs'], { timeout: 10_000 }, () => resolve()));
    xfs = listed();
  }
  // Deferred removal needs dm ≥ 4.27 (Docker's check).
  return { xfsSupported: xfs, deferredRemovalSupported: v.major > 4 || (v.major === 4 && v.minor >= 27) };
}
