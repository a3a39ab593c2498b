/**
 * KernelBackend: the Backend over @thinjournal/native (raw ioctls, no dmsetup, no libdevmapper).
 * Every native errno error is rethrown as ERR_KERNEL with the native error as `cause` (see errors.ts).
 * Policy that lives here, not in C++: retrying a loop attach when another process took the offered loop
 * device (EBUSY), and reading thin ids through a metadata snapshot with thin_dump.
 */
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { createRequire } from 'node:module';
import { ThinjournalError } from '@thinjournal/spec';
import { BackendBase, type BackendCapabilities, type DeviceInfo, type DeviceListEntry, type MountOptions, type MountState, type PoolMetadata, type RemoveResult } from './backend.js';
import { errnoOf, fromNative } from './errors.js';
import { devNumbers, fsGeometry, fsUuid, growFs, mkfs, mounted, probeFsType, runTool, xfsSetNospaceMaxRetries, type FsGeometry, type FsType, type MkfsOptions } from './fs.js';
import type { TableLine } from './tables.js';
import { readThinMetadataFile } from './thin-metadata.js';
import { isNativeStep, planResult, runPlanSteps, type ExecStep, type NativeExecStep, type PlanProgress, type PlanResult, type StepOutcome } from './plan.js';

type Native = typeof import('@thinjournal/native');

let nativeModule: Native | null = null;
/** Loads the addon on first use, so that importing @thinjournal/dm never needs it (ModelBackend does not). */
export function loadNative(): Native {
  if (nativeModule) return nativeModule;
  try {
    nativeModule = createRequire(import.meta.url)('@thinjournal/native') as Native;
  } catch (err) {
    throw new ThinjournalError('ERR_NATIVE_UNAVAILABLE', `@thinjournal/native cannot load: ${(err as Error).message}`, { cause: err });
  }
  return nativeModule;
}

async function call<T>(p: () => Promise<T>): Promise<T> {
  try {
    return await p();
  } catch (err) {
    throw fromNative(err);
  }
}

/** errno value → its symbolic name (os.constants.errno), for progress events. */
function errnoNameOf(errno: number): string | undefined {
  for (const [name, v] of Object.entries(osConstants.errno)) if (v === errno) return name;
  return undefined;
}

function toSafe(n: number | bigint, what: string): number {
  const v = typeof n === 'bigint' ? Number(n) : n;
  if (!Number.isSafeInteger(v)) throw new ThinjournalError('ERR_DM_STATUS', `${what} ${String(n)} is beyond 2^53`);
  return v;
}

function infoOf(i: import('@thinjournal/native').DmInfo): DeviceInfo {
  return {
    name: i.name, uuid: i.uuid, major: i.major, minor: i.minor, openCount: i.openCount, eventNr: i.eventNr,
    targetCount: i.targetCount, suspended: i.suspended, readOnly: i.readOnly, activeTable: i.activeTable,
    inactiveTable: i.inactiveTable, deferredRemove: i.deferredRemove,
  };
}

function linesOf(ts: import('@thinjournal/native').DmTarget[]): TableLine[] {
  return ts.map((t) => ({ start: toSafe(t.start, 'start'), length: toSafe(t.length, 'length'), type: t.type, params: t.params }));
}

/** Parses `thin_dump --skip-mappings` XML: the superblock's transaction and each <device dev_id>. */
export function parseThinDump(xml: string): PoolMetadata {
  const sb = /<superblock\b[^>]*\btransaction="(\d+)"/.exec(xml);
  if (!sb) throw new ThinjournalError('ERR_DM_STATUS', 'thin_dump output has no superblock transaction', { line: xml.slice(0, 200) });
  const ids = [...xml.matchAll(/<device\b[^>]*\bdev_id="(\d+)"/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
  const attr = (name: string): number => {
    const m = new RegExp(`<superblock\\b[^>]*\\b${name}="(\\d+)"`).exec(xml);
    if (!m) throw new ThinjournalError('ERR_DM_STATUS', `thin_dump output has no superblock ${name}`, { line: xml.slice(0, 200) });
    return Number(m[1]);
  };
  return { transactionId: Number(sb[1]), ids, dataBlockSectors: attr('data_block_size'), dataBlocks: attr('nr_data_blocks') };
}

export interface KernelBackendOptions {
  /** Where device nodes are made (no udev is assumed). Default /dev/mapper. */
  nodeDir?: string;
}

export class KernelBackend extends BackendBase {
  readonly kind = 'kernel' as const;
  readonly supports: BackendCapabilities = Object.freeze({ hostPaths: true, hostMounts: true, hostEnvironment: true });
  hostDirectoryMade(): void {}
  hostFileMade(): void {}
  hostFileGrown(): void {}
  readonly nodeDir: string;
  private readonly n: Native;

  constructor(opts: KernelBackendOptions = {}) {
    super();
    this.nodeDir = opts.nodeDir ?? '/dev/mapper';
    this.n = loadNative();
  }

  /** The native module itself, for callers that need a call the Backend does not wrap (e.g. dmWaitEvent). */
  get native(): Native {
    return this.n;
  }

  devicePath(name: string): string {
    return `${this.nodeDir}/${name}`;
  }
  async version() {
    return call(() => this.n.dmVersion());
  }
  async listDevices(): Promise<DeviceListEntry[]> {
    const list = await call(() => this.n.dmListDevices());
    return list.map((d) => ({ name: d.name, major: d.major, minor: d.minor }));
  }
  /**
   * Invariant: a device this backend reports present is reachable at devicePath(name). Without udev, the
   * node is made by the process that created the device, after DM_DEV_CREATE/LOAD/resume; a process killed
   * in between leaves a live device without a node (found by the kill test: a re-adopted activation, then
   * mount → ENOENT). Every caller that adopts an existing device (recovery's guards, the engine's
   * "already active") asks info() first, so info() (re)makes the node, as udev would on a real system.
   */
  protected async rawInfo(name: string): Promise<DeviceInfo | null> {
    let i: import('@thinjournal/native').DmInfo;
    try {
      i = await call(() => this.n.dmInfo(name));
    } catch (err) {
      if (errnoOf(err) === 'ENXIO') return null;
      throw err;
    }
    await call(() => this.n.ensureDmNode(this.nodeDir, name, i.major, i.minor));
    return infoOf(i);
  }
  protected async rawCreate(name: string, table: TableLine[], opts: { uuid?: string; readOnly?: boolean }): Promise<DeviceInfo> {
    // An empty table means DM_DEV_CREATE alone: the kernel refuses to load a table without targets.
    const o: Parameters<Native['dmCreate']>[1] = table.length ? { table, nodeDir: this.nodeDir } : {};
    if (opts.uuid !== undefined) o.uuid = opts.uuid;
    if (opts.readOnly !== undefined) o.readOnly = opts.readOnly;
    return infoOf(await call(() => this.n.dmCreate(name, o)));
  }
  protected async rawLoad(name: string, table: TableLine[], opts: { readOnly?: boolean }): Promise<void> {
    await call(() => this.n.dmLoad(name, table, { readOnly: opts.readOnly ?? false }));
  }
  protected async rawClear(name: string): Promise<void> {
    await call(() => this.n.dmClear(name));
  }
  protected async rawSuspend(name: string, opts: { noFlush?: boolean }): Promise<void> {
    await call(() => this.n.dmSuspend(name, { noFlush: opts.noFlush ?? false }));
  }
  protected async rawResume(name: string): Promise<DeviceInfo> {
    return infoOf(await call(() => this.n.dmResume(name, { nodeDir: this.nodeDir })));
  }
  protected async rawRemove(name: string, opts: { deferred?: boolean }): Promise<RemoveResult> {
    return call(() => this.n.dmRemove(name, { deferred: opts.deferred ?? false, nodeDir: this.nodeDir }));
  }
  protected async rawTable(name: string): Promise<TableLine[]> {
    return linesOf((await call(() => this.n.dmTable(name))).targets);
  }
  protected async rawStatus(name: string, opts: { noFlush?: boolean }): Promise<TableLine[]> {
    return linesOf((await call(() => this.n.dmStatus(name, { noFlush: opts.noFlush ?? false }))).targets);
  }
  protected async rawMessage(name: string, message: string, sector: number): Promise<string | null> {
    return call(() => this.n.dmMessage(name, sector, message));
  }

  /** The /dev node of a "major:minor" block device, through sysfs (DEVNAME in its uevent). */
  async nodeOf(majMin: string): Promise<string> {
    let text: string;
    try {
      text = await readFile(`/sys/dev/block/${majMin}/uevent`, 'utf8');
    } catch (err) {
      throw fromNative(err);
    }
    const m = /^DEVNAME=(.+)$/m.exec(text);
    if (!m) throw new ThinjournalError('ERR_KERNEL', `no DEVNAME for block device ${majMin}`, { errnoName: 'ENODEV', syscall: 'sysfs', path: majMin });
    return `/dev/${m[1]}`;
  }

  /**
   * Reads an active pool's committed metadata without stopping it: reserve_metadata_snap (which commits
   * first), `thin_dump --metadata-snap --skip-mappings`, release_metadata_snap. A snapshot someone else
   * holds makes the reserve fail with EBUSY; that is reported, not worked around.
   */
  async poolMetadata(pool: string): Promise<PoolMetadata> {
    const t = await this.poolTable(pool);
    const meta = /^\d+:\d+$/.test(t.metadataDevice) ? await this.nodeOf(t.metadataDevice) : t.metadataDevice;
    try {
      await this.message(pool, 'reserve_metadata_snap');
    } catch (err) {
      // EBUSY: a metadata snapshot is already held — one a reader killed between reserve and release left
      // (dm-thin keeps it until released). Release it and take a fresh one; the reservation is only ever a
      // reader's (an operator running thin tools on the live pool meanwhile would lose theirs: see README).
      if (errnoOf(err) !== 'EBUSY') throw err;
      await this.message(pool, 'release_metadata_snap');
      await this.message(pool, 'reserve_metadata_snap');
    }
    try {
      const { stdout } = await runTool('thin_dump', ['--metadata-snap', '--skip-mappings', meta]);
      // The kernel wipes the space map roots in the snapshot's copy of the superblock (nr_data_blocks reads
      // 0 there): the data size comes from the live pool's status line instead.
      return { ...parseThinDump(stdout), dataBlocks: (await this.poolStatusOk(pool)).totalDataBlocks };
    } finally {
      await this.message(pool, 'release_metadata_snap');
    }
  }
  /** thin_dump on a block device; a regular file (an unattached loopback pool's metadata) is read directly. */
  async readMetadata(metadataDevice: string): Promise<PoolMetadata> {
    const st = await stat(metadataDevice).catch((err) => { throw fromNative(err); });
    if (st.isFile()) return readThinMetadataFile(metadataDevice);
    const { stdout } = await runTool('thin_dump', ['--skip-mappings', metadataDevice]);
    return parseThinDump(stdout);
  }

  /**
   * Each maximal run of the kinds native/src/plan.cc knows in one native call: one worker thread runs the
   * steps in order, evaluates each guard itself (DM_DEV_STATUS, the pool status line, the message's errno,
   * mountinfo) and streams one progress event per step back to this thread. The other kinds (createThin,
   * createSnap: unguarded messages) run with the TypeScript executor, in their place in the order.
   */
  protected override async runPlan(steps: readonly ExecStep[], emit: (p: PlanProgress) => void): Promise<PlanResult> {
    const outcomes: StepOutcome[] = [];
    for (let i = 0; i < steps.length;) {
      const native = isNativeStep(steps[i]!);
      let j = i;
      while (j < steps.length && isNativeStep(steps[j]!) === native) j++;
      const offset = i;
      const shifted = (p: PlanProgress) => emit({ ...p, index: p.index + offset });
      const run = steps.slice(i, j);
      const r = native ? await this.runNative(run.filter(isNativeStep), shifted) : await runPlanSteps(this, run, shifted);
      outcomes.push(...r.outcomes);
      if (r.failed) return planResult(outcomes, { ...r.failed, index: r.failed.index + offset });
      i = j;
    }
    return planResult(outcomes, null);
  }

  private async runNative(steps: readonly NativeExecStep[], emit: (p: PlanProgress) => void): Promise<PlanResult> {
    const native: import('@thinjournal/native').PlanStep[] = steps.map((st) => {
      switch (st.kind) {
        case 'createDevice':
          return { kind: st.kind, name: st.name, table: [...st.table], guard: st.guard };
        case 'mount':
          return {
            kind: st.kind, device: st.device, path: st.path, fsType: st.fsType, guard: st.guard,
            flags: st.readOnly ? this.n.sysConstants.MS_RDONLY : 0, ...(st.data !== undefined ? { data: st.data } : {}),
          };
        default:
          return { ...st };
      }
    });
    const r = await call(() => this.n.execPlan(native, (e) => {
      const errnoName = e.errno !== undefined ? errnoNameOf(e.errno) : undefined;
      emit({ index: e.index, kind: e.kind, outcome: e.outcome, ...(errnoName ? { errnoName } : {}) });
    }, { nodeDir: this.nodeDir }));
    return planResult(r.outcomes, r.failed ? { index: r.failed.index, step: steps[r.failed.index]!, error: fromNative(r.failed.error) } : null);
  }

  async attachLoop(file: string, opts: { readOnly?: boolean } = {}): Promise<string> {
    // LOOP_CTL_GET_FREE then LOOP_CONFIGURE is not atomic: another process may bind the offered device
    // first (EBUSY). Asking again is safe; a few attempts cover real contention.
    for (let attempt = 1; ; attempt++) {
      try {
        return (await call(() => this.n.loopAttach(file, { readOnly: opts.readOnly ?? false }))).device;
      } catch (err) {
        if (errnoOf(err) !== 'EBUSY' || attempt >= 5) throw err;
      }
    }
  }
  async detachLoop(device: string): Promise<void> {
    await call(() => this.n.loopDetach(device));
  }
  async resizeLoop(device: string): Promise<number> {
    await call(() => this.n.loopSetCapacity(device));
    return this.blockDeviceSize(device);
  }
  async loopBackingFile(device: string): Promise<string> {
    return call(() => this.n.loopBackingFile(device));
  }
  /**
   * Scans sysfs: /sys/block/loopN/loop/backing_file is the bound file's path as d_path() prints it —
   * resolved (no symlinks), in full (LOOP_GET_STATUS64's lo_file_name stops at 63 bytes), and with
   * " (deleted)" appended once the file was unlinked. So the match is against realpath(file), exactly:
   * a deleted backing file is not the file now at that path. An unbound loop has no loop/ directory.
   */
  protected async rawFindLoop(file: string): Promise<string | null> {
    let real: string;
    try {
      real = await realpath(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return null; // nothing at that path: no loop can be bound to it
      throw fromNative(err);
    }
    let entries: string[];
    try {
      entries = await readdir('/sys/block');
    } catch (err) {
      throw fromNative(err);
    }
    const numbers = entries.map((e) => /^loop(\d+)$/.exec(e)).filter((m): m is RegExpExecArray => m !== null).map((m) => Number(m[1])).sort((a, b) => a - b);
    for (const n of numbers) {
      let backing: string;
      try {
        backing = await readFile(`/sys/block/loop${n}/loop/backing_file`, 'utf8');
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'ENXIO') continue; // not bound (or detached while we looked)
        throw fromNative(err);
      }
      if (backing.endsWith('\n')) backing = backing.slice(0, -1);
      if (backing === real) return `/dev/loop${n}`;
    }
    return null;
  }
  async blockDeviceSize(device: string): Promise<number> {
    return toSafe(await call(() => this.n.blkSize(device)), 'device size');
  }
  async deviceNumber(path: string): Promise<string | null> {
    let st;
    try {
      st = await stat(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return null;
      throw fromNative(err);
    }
    if (!st.isBlockDevice()) return null;
    const { major, minor } = devNumbers(st.rdev);
    return `${major}:${minor}`;
  }
  async zeroRange(device: string, offset: number, length: number): Promise<void> {
    await call(() => this.n.blkZeroOut(device, offset, length));
  }
  async discard(device: string, offset: number, length: number): Promise<void> {
    await call(() => this.n.blkDiscard(device, offset, length));
  }
  async flush(device: string): Promise<void> {
    await call(() => this.n.blkFlush(device));
  }

  protected rawMkfs(device: string, type: FsType, opts: MkfsOptions): Promise<void> {
    return mkfs(device, type, opts);
  }
  growFs(device: string, mountPoint: string, type: FsType): Promise<void> {
    return growFs(device, mountPoint, type);
  }
  probeFsType(device: string): Promise<FsType> {
    return probeFsType(device);
  }
  fsGeometry(device: string): Promise<FsGeometry> {
    return fsGeometry(device);
  }
  xfsSetNospaceMaxRetries(device: string, retries: number): Promise<void> {
    return xfsSetNospaceMaxRetries(device, retries);
  }
  fsUuid(device: string): Promise<string> {
    return fsUuid(device);
  }
  async mount(device: string, target: string, opts: MountOptions): Promise<void> {
    const flags = opts.readOnly ? this.n.sysConstants.MS_RDONLY : 0;
    await call(() => this.n.mount(device, target, opts.fsType, flags, opts.data ?? ''));
  }
  async umount(target: string, opts: { detach?: boolean } = {}): Promise<void> {
    await call(() => this.n.umount(target, opts.detach ? this.n.sysConstants.MNT_DETACH : 0));
  }
  async mounted(target: string): Promise<MountState | null> {
    const m = await mounted(target);
    return m ? { source: m.source, fsType: m.fsType, readOnly: m.options.includes('ro') } : null;
  }
}

