/**
 * decide: (state, command) → events. The decider shape (decide/evolve/initialState).
 *
 * Error style: decide THROWS a coded ThinjournalError for bad or refused input and never returns an error
 * value; `tryDecide` wraps it for callers that prefer a result. A command that is not a command object at all
 * (unknown `type`, not an object) is programmer misuse: TypeError. decide never changes `state`.
 *
 * Transactions: a mutating command's events are `TransactionBegan{op, hash?}` followed by its pool-metadata
 * event(s), all stamped txId = state.txId + 1; the reconciler later appends TransactionCommitted or
 * TransactionRolledBack (see state.ts). While a transaction is pending, mutating commands are refused
 * (ERR_DEVICE_BUSY): pool transaction ids serialise them. Activation, mount, deferred-deletion marks,
 * device resizes and pool device re-attachment do not change pool metadata: their events carry the current
 * txId. Read-only commands and commands that find nothing to do produce no events.
 *
 * Facts only the kernel knows (is the dm device still open? how full is the pool?) come in as command
 * fields, observed by the caller just before deciding. So do run-time policies (deferred removal/deletion,
 * min free space); when absent they default to the dm.* options recorded at PoolInitialised.
 *
 * Device ids: next-id-with-wrap (Docker's rule). The allocator starts after `state.nextDeviceId` (the last id
 * handed out), wraps at 2^24, and takes the first id no device holds. Why not lowest-free: an id that was just
 * freed — a delete whose metadata commit may not have reached disk, a rolled-back create_thin the kernel may
 * have kept, a device whose deferred removal is still pending — must not be handed out again at once, or a
 * new device could meet the old one's blocks (or EEXIST) after a crash. With the cursor, a freed id is reused
 * only after 2^24 − 1 further allocations. Ids of devices awaiting deferred deletion stay taken until their
 * DeviceDeleted commits, and the cursor does not go back when a transaction rolls back.
 */
import { ThinjournalError, type ErrorCode, type JournalEvent } from '@thinjournal/spec';
import type { Device, State } from './state.js';
import {
  MAX_DEVICE_ID, MAX_DM_NAME_BYTES, BASE_HASH, checkHash, checkDmName, checkMountPath, checkMountOptions, checkUuid, checkSize,
  checkBlockSize, checkUint, checkDeviceText, show,
} from './validate.js';
import { DEFAULTS, joinMountOptions, recordedTexts } from './options.js';
import { decideSnapshot, type SnapshotCommand } from './snapshots.js';

/** Pool usage as the kernel reports it (thin-pool status): used/total data and metadata blocks. */
export interface PoolUsage {
  readonly dataUsed: number;
  readonly dataTotal: number;
  readonly metadataUsed: number;
  readonly metadataTotal: number;
}

export type Command =
  /** Create (or adopt) the pool. `transactionId`: the pool's current transaction id (0 for a new pool). */
  | { readonly type: 'initPool'; readonly poolName: string; readonly devicePrefix?: string; readonly dataDevice: string; readonly metadataDevice: string;
      readonly loopback: boolean; readonly dataSize: number; readonly metadataSize: number; readonly blockSize: number;
      readonly options?: Readonly<Record<string, string>>; readonly transactionId?: number }
  /** The base image (hash ""): create_thin + mkfs with this UUID (the caller picks it and gives it to mkfs). */
  | { readonly type: 'createBaseImage'; readonly size: number; readonly fs: 'ext4' | 'xfs'; readonly uuid: string }
  /** Docker's AddDevice: a snapshot of `baseHash`; `size` defaults to the parent's and may not be smaller. */
  | { readonly type: 'addDevice'; readonly hash: string; readonly baseHash: string; readonly size?: number;
      readonly usage?: PoolUsage; readonly minFreeSpacePercent?: number }
  /** An empty thin device (create_thin), no filesystem. */
  | { readonly type: 'createDevice'; readonly hash: string; readonly size: number; readonly usage?: PoolUsage; readonly minFreeSpacePercent?: number }
  /** Docker's DeleteDevice. `busy`: the kernel reports the device open. `deferredDeletion`: policy. */
  | { readonly type: 'deleteDevice'; readonly hash: string; readonly syncDelete?: boolean; readonly busy?: boolean; readonly deferredDeletion?: boolean }
  /** The deferred-deletion worker's retry for one device. Nothing happens while it is still busy. */
  | { readonly type: 'retryDeferredDeletion'; readonly hash: string; readonly busy?: boolean }
  | { readonly type: 'activateDevice'; readonly hash: string; readonly name?: string }
  /** `openCount`: the kernel's open count for the dm device; `deferredRemoval`: policy. */
  | { readonly type: 'deactivateDevice'; readonly hash: string; readonly openCount?: number; readonly deferredRemoval?: boolean }
  /** Docker's MountDevice: activates if needed; options default to Docker's (nouuid for xfs, dm.mountopt). */
  | { readonly type: 'mountDevice'; readonly hash: string; readonly path: string; readonly options?: string; readonly name?: string }
  /** Docker's UnmountDevice: unmounts, and after the last mount deactivates unless `deactivate: false`. */
  | { readonly type: 'unmountDevice'; readonly hash: string; readonly path: string; readonly deactivate?: boolean;
      readonly openCount?: number; readonly deferredRemoval?: boolean }
  | { readonly type: 'resizePool'; readonly dataSize: number; readonly metadataSize?: number }
  /** The pool's data/metadata devices are now at these paths (a loopback pool's files re-attached after a reboot,
   *  maybe on other loop devices); `dataFile`/`metadataFile` are the backing files, for audit. Nothing when the
   *  paths are unchanged. Not a transaction: allowed while one is pending. */
  | { readonly type: 'attachPoolDevices'; readonly dataDevice: string; readonly metadataDevice: string;
      readonly dataFile?: string; readonly metadataFile?: string }
  /** Grow a device (e.g. the base image to a larger dm.basesize). */
  | { readonly type: 'resizeDevice'; readonly hash: string; readonly size: number }
  // read-only
  | { readonly type: 'hasDevice'; readonly hash: string }
  | { readonly type: 'getDeviceStatus'; readonly hash: string }
  | { readonly type: 'list' }
  | { readonly type: 'status' }
  // the snapshot namespace (snapshots.ts)
  | SnapshotCommand;

export type CommandType = Command['type'];

const READ_ONLY: ReadonlySet<string> = new Set(['hasDevice', 'getDeviceStatus', 'list', 'status']);

function err(code: ErrorCode, message: string, details: Record<string, unknown> = {}): ThinjournalError {
  return new ThinjournalError(code, message, details);
}
const q = (s: string) => JSON.stringify(s);

function requirePool(s: State): NonNullable<State['pool']> {
  if (!s.pool) throw err('ERR_POOL_NOT_INITIALISED', 'the pool has not been initialised');
  return s.pool;
}

function requireNoPending(s: State): void {
  if (s.pending) {
    throw err('ERR_DEVICE_BUSY', `pool transaction ${s.pending.txId} (${s.pending.op}${s.pending.hash !== null ? ` ${q(s.pending.hash)}` : ''}) is still pending`, { txId: s.pending.txId });
  }
}

/** Hashes the pending transaction creates, deletes or snapshots from. */
function pendingTouches(s: State, hash: string): boolean {
  const p = s.pending;
  if (!p) return false;
  if (p.hash === hash) return true;
  return p.events.some((e) => (e.body as { hash?: string }).hash === hash || (e.body as { parentHash?: string }).parentHash === hash);
}

/** A committed device, not involved in the pending transaction; `live`: not awaiting deferred deletion. */
function getDev(s: State, hash: string, { live }: { live: boolean }): Device {
  const d = s.devices.get(hash);
  if (!d) throw err('ERR_DEVICE_NOT_FOUND', `unknown device ${q(hash)}`, { hash });
  if (live && d.deletionDeferred) throw err('ERR_DEVICE_NOT_FOUND', `device ${q(hash)} is marked for deferred deletion`, { hash });
  if (pendingTouches(s, hash)) throw err('ERR_DEVICE_BUSY', `device ${q(hash)} is part of pending transaction ${s.pending!.txId}`, { hash });
  return d;
}

/** The next device id by next-id-with-wrap (see the header), or ERR_NO_SPACE when all 2^24 ids are taken. */
export function nextFreeDeviceId(s: State): number {
  for (let i = 1; i <= MAX_DEVICE_ID + 1; i++) {
    const id = (s.nextDeviceId + i) & MAX_DEVICE_ID;
    if (!s.deviceIds.has(id)) return id;
  }
  throw err('ERR_NO_SPACE', `all ${MAX_DEVICE_ID + 1} thin device ids are in use`);
}

function policyBool(s: State, option: string, given: boolean | undefined): boolean {
  if (given !== undefined) return given === true;
  return s.pool?.options[option] === 'true';
}

function minFreePercent(s: State, given: number | undefined): number {
  if (given !== undefined) {
    if (!Number.isInteger(given) || given < 0 || given >= 100) throw err('ERR_BAD_OPTION', `dm.min_free_space ${show(given)} is not a percentage in 0…99`, { option: 'dm.min_free_space', text: String(given) });
    return given;
  }
  const t = s.pool?.options['dm.min_free_space'];
  const m = t === undefined ? null : /^(\d+)%$/.exec(t);
  return m ? Number(m[1]) : DEFAULTS.minFreeSpacePercent;
}

/** Docker's poolHasFreeSpace: refuse new devices when free data or metadata blocks fall below the minimum. */
function checkFreeSpace(s: State, usage: PoolUsage | undefined, percentGiven: number | undefined): void {
  const pct = minFreePercent(s, percentGiven);
  if (!usage || pct === 0) return;
  for (const [what, used, total] of [['data', usage.dataUsed, usage.dataTotal], ['metadata', usage.metadataUsed, usage.metadataTotal]] as const) {
    checkUint(used, `pool ${what} used blocks`);
    checkUint(total, `pool ${what} total blocks`);
    if (used > total) throw err('ERR_BAD_SIZE', `pool ${what} usage ${used} exceeds its total ${total}`);
    const minFree = Math.max(1, Math.floor((total * pct) / 100));
    const free = total - used;
    if (free < minFree) {
      throw err('ERR_NO_SPACE', `thin pool has ${free} free ${what} blocks of ${total}, less than the minimum ${minFree} (dm.min_free_space=${pct}%); free space in the pool or lower dm.min_free_space`, { free, minFree, total, what });
    }
  }
}

function dmNameFor(s: State, hash: string, given: string | undefined): string {
  const pool = requirePool(s);
  return checkDmName(given ?? `${pool.devicePrefix}-${hash === BASE_HASH ? 'base' : hash}`);
}

/**
 * A new device must be activatable: its dm name `<devicePrefix>-<hash>` must fit the kernel's 127 bytes
 * (DM_NAME_LEN 128 with the NUL). Checked where the device is created, so that an id too long for its pool is
 * refused before anything is journaled rather than at its first activation.
 */
function checkNameFits(pool: NonNullable<State['pool']>, hash: string): void {
  const name = `${pool.devicePrefix}-${hash}`;
  const bytes = Buffer.byteLength(name);
  if (bytes > MAX_DM_NAME_BYTES) {
    throw err('ERR_BAD_ID', `id ${show(hash)} is ${Buffer.byteLength(hash)} bytes; with the device prefix ${q(pool.devicePrefix)} the device name would be ${bytes} bytes, over the kernel's ${MAX_DM_NAME_BYTES} (ids of this pool can be at most ${MAX_DM_NAME_BYTES - Buffer.byteLength(pool.devicePrefix) - 1} bytes)`, { value: hash });
  }
}

function tx(s: State, op: string, hash: string | null, ...events: JournalEvent[]): JournalEvent[] {
  const txId = s.txId + 1;
  const began: JournalEvent = { type: 'TransactionBegan', txId, body: hash === null ? { op } : { op, hash } };
  return [began, ...events.map((e) => ({ ...e, txId }) as JournalEvent)];
}

/** Whether the dm device is in use: our own mounts, a pending deferred removal, or the caller's observation. */
function isBusy(d: Device, observed: boolean | undefined): boolean {
  return d.active || d.mounts.length > 0 || observed === true;
}

/** Deletion is refused while live snapshots of the device exist (lineage stays whole: every parent exists). */
function liveChildren(s: State, hash: string): { live: number; deferred: number } {
  const n = s.childCounts.get(hash) ?? 0;
  if (n === 0) return { live: 0, deferred: 0 };
  let deferred = 0;
  for (const d of s.devices.values()) if (d.parentHash === hash && d.deletionDeferred) deferred++;
  return { live: n - deferred, deferred };
}

/** The events for `command` on `state`. Throws a coded ThinjournalError; never changes `state`. */
export function decide(state: State, command: Command): readonly JournalEvent[] {
  if (typeof command !== 'object' || command === null) throw new TypeError('decide: command must be an object');
  const s = state;
  const T = s.txId;
  const c = command;
  switch (c.type) {
    case 'initPool': {
      if (s.pool) throw err('ERR_POOL_EXISTS', `the pool is already initialised (${s.pool.poolName})`);
      const poolName = checkDmName(c.poolName, 'pool name');
      const devicePrefix = c.devicePrefix === undefined ? undefined : checkDmName(c.devicePrefix, 'device prefix');
      const dataDevice = checkDeviceText('data device', c.dataDevice);
      const metadataDevice = checkDeviceText('metadata device', c.metadataDevice);
      const blockSize = checkBlockSize(c.blockSize);
      const dataSize = checkSize(c.dataSize, 'pool data size');
      if (dataSize < blockSize) throw err('ERR_BAD_SIZE', `pool data size ${dataSize} is smaller than one block (${blockSize})`);
      const metadataSize = checkSize(c.metadataSize, 'pool metadata size');
      const txId = c.transactionId === undefined ? 0 : checkUint(c.transactionId, 'pool transaction id');
      if (typeof c.loopback !== 'boolean') throw new TypeError('decide(initPool): loopback must be a boolean');
      const body: Record<string, unknown> = { poolName, dataDevice, metadataDevice, loopback: c.loopback, dataSize, metadataSize, blockSize };
      if (c.options !== undefined) body.options = { ...c.options };
      if (devicePrefix !== undefined) body.devicePrefix = devicePrefix;
      return [{ type: 'PoolInitialised', txId, body } as JournalEvent];
    }

    case 'createBaseImage': {
      requirePool(s);
      requireNoPending(s);
      if (s.base || s.devices.has(BASE_HASH)) throw err('ERR_DEVICE_EXISTS', 'the base image exists', { hash: BASE_HASH });
      const size = checkSize(c.size, 'base image size');
      if (c.fs !== 'ext4' && c.fs !== 'xfs') throw err('ERR_BAD_OPTION', `dm.fs ${show(c.fs)}: unsupported filesystem (ext4 or xfs)`, { option: 'dm.fs', text: String(c.fs) });
      const uuid = checkUuid(c.uuid);
      const deviceId = nextFreeDeviceId(s);
      return tx(s, 'createBaseImage', BASE_HASH, { type: 'BaseImageCreated', txId: 0, body: { hash: BASE_HASH, deviceId, size, fs: c.fs, uuid } });
    }

    case 'addDevice':
    case 'createDevice': {
      const hash = checkHash(c.hash);
      const baseHash = c.type === 'addDevice' ? checkHash(c.baseHash, { allowBase: true, what: 'base hash' }) : null;
      checkNameFits(requirePool(s), hash);
      requireNoPending(s);
      const existing = s.devices.get(hash);
      if (existing) throw err('ERR_DEVICE_EXISTS', `device ${q(hash)} already exists${existing.deletionDeferred ? ' (marked for deferred deletion)' : ''}`, { hash });
      if (c.type === 'createDevice') {
        const size = checkSize(c.size, 'device size');
        checkFreeSpace(s, c.usage, c.minFreeSpacePercent);
        const deviceId = nextFreeDeviceId(s);
        return tx(s, 'createDevice', hash, { type: 'DeviceCreated', txId: 0, body: { hash, deviceId, size } });
      }
      const parent = getDev(s, baseHash!, { live: true });
      let size = parent.size;
      if (c.size !== undefined && c.size !== 0) {
        // Docker: size 0 (or none) means the parent's size.
        size = checkSize(c.size, 'device size');
        if (size < parent.size) throw err('ERR_BAD_SIZE', `device size ${size} is smaller than its parent's ${parent.size} (a snapshot cannot shrink)`, { value: size });
      }
      checkFreeSpace(s, c.usage, c.minFreeSpacePercent);
      const deviceId = nextFreeDeviceId(s);
      return tx(s, 'addDevice', hash, { type: 'SnapshotCreated', txId: 0, body: { hash, deviceId, parentHash: parent.hash, parentDeviceId: parent.deviceId, size } });
    }

    case 'deleteDevice':
    case 'retryDeferredDeletion': {
      const hash = checkHash(c.hash, { allowBase: true });
      requirePool(s);
      const d = getDev(s, hash, { live: false });
      if (s.base && s.base.hash === hash) throw err('ERR_DEVICE_BUSY', 'the base image cannot be deleted', { hash });
      const retry = c.type === 'retryDeferredDeletion' || d.deletionDeferred;
      if (c.type === 'retryDeferredDeletion' && !d.deletionDeferred) throw err('ERR_DEVICE_NOT_FOUND', `device ${q(hash)} is not awaiting deferred deletion`, { hash });
      const sync = c.type === 'deleteDevice' && c.syncDelete === true;
      const deferredDeletion = c.type === 'deleteDevice' ? policyBool(s, 'dm.use_deferred_deletion', c.deferredDeletion) : true;
      if (d.mounts.length && !d.deletionDeferred) throw err('ERR_DEVICE_BUSY', `device ${q(hash)} is mounted at ${d.mounts[0]!.path}; unmount it first`, { hash });
      const kids = liveChildren(s, hash);
      const busy = isBusy(d, c.busy) || kids.deferred > 0;
      if (kids.live > 0) throw err('ERR_DEVICE_BUSY', `device ${q(hash)} has ${kids.live} snapshot(s); delete them first`, { hash });
      if (!busy) {
        requireNoPending(s);
        return tx(s, 'deleteDevice', hash, { type: 'DeviceDeleted', txId: 0, body: { hash, deviceId: d.deviceId } });
      }
      // Busy: the device is active (deactivate it first), open, or its snapshots await deletion.
      const why = d.active ? (d.removalDeferred ? 'its deferred removal has not completed' : 'it is active; deactivate it first')
        : kids.deferred > 0 ? `${kids.deferred} snapshot(s) of it await deferred deletion` : 'it is open';
      if (sync || (!retry && !deferredDeletion)) throw err('ERR_DEVICE_BUSY', `device ${q(hash)} cannot be deleted now: ${why}`, { hash });
      // Already marked: still waiting, nothing new to record.
      if (retry) return [];
      return [{ type: 'DeletionDeferred', txId: T, body: { hash, deviceId: d.deviceId } }];
    }

    case 'activateDevice': {
      const hash = checkHash(c.hash, { allowBase: true });
      requirePool(s);
      const d = getDev(s, hash, { live: true });
      if (d.active && !d.removalDeferred) return [];
      const name = d.removalDeferred ? d.dmName! : dmNameFor(s, hash, c.name);
      return [{ type: 'DeviceActivated', txId: T, body: { hash, deviceId: d.deviceId, name, size: d.size } }];
    }

    case 'deactivateDevice': {
      const hash = checkHash(c.hash, { allowBase: true });
      requirePool(s);
      const d = getDev(s, hash, { live: false });
      if (d.mounts.length) throw err('ERR_DEVICE_BUSY', `device ${q(hash)} is mounted at ${d.mounts[0]!.path}; unmount it first`, { hash });
      if (!d.active) return [];
      const open = checkUint(c.openCount ?? 0, 'open count') > 0;
      if (d.removalDeferred) return open ? [] : [{ type: 'DeviceDeactivated', txId: T, body: { hash, deferred: false } }];
      if (!open) return [{ type: 'DeviceDeactivated', txId: T, body: { hash, deferred: false } }];
      if (policyBool(s, 'dm.use_deferred_removal', c.deferredRemoval)) return [{ type: 'DeviceDeactivated', txId: T, body: { hash, deferred: true } }];
      throw err('ERR_DEVICE_BUSY', `device ${q(hash)} is open (${c.openCount}) and deferred removal is off`, { hash });
    }

    case 'mountDevice': {
      const hash = checkHash(c.hash, { allowBase: true });
      const path = checkMountPath(c.path);
      requirePool(s);
      const d = getDev(s, hash, { live: true });
      if (d.mounts.some((m) => m.path === path)) return [];
      let options = c.options;
      if (options === undefined) {
        // Docker's MountDevice: XFS snapshots share their origin's UUID, so they mount with nouuid.
        const fs = s.base?.fs;
        const extra = s.pool!.options['dm.mountopt'];
        const configured = extra === undefined ? '' : recordedTexts(extra).reduce(joinMountOptions, '');
        options = joinMountOptions(fs === 'xfs' ? 'nouuid' : '', configured);
      }
      checkMountOptions(options);
      const events: JournalEvent[] = [];
      if (!d.active || d.removalDeferred) {
        const name = d.removalDeferred ? d.dmName! : dmNameFor(s, hash, c.name);
        events.push({ type: 'DeviceActivated', txId: T, body: { hash, deviceId: d.deviceId, name, size: d.size } });
      }
      events.push({ type: 'DeviceMounted', txId: T, body: options === '' ? { hash, path } : { hash, path, options } });
      return events;
    }

    case 'unmountDevice': {
      const hash = checkHash(c.hash, { allowBase: true });
      const path = checkMountPath(c.path);
      requirePool(s);
      const d = getDev(s, hash, { live: false });
      if (!d.mounts.some((m) => m.path === path)) throw err('ERR_DEVICE_NOT_FOUND', `device ${q(hash)} is not mounted at ${path}`, { hash, path });
      const events: JournalEvent[] = [{ type: 'DeviceUnmounted', txId: T, body: { hash, path } }];
      if (d.mounts.length === 1 && c.deactivate !== false && d.active && !d.removalDeferred) {
        const open = checkUint(c.openCount ?? 0, 'open count') > 0;
        // Still open elsewhere and no deferred removal: the unmount stands and the device stays active.
        if (!open) events.push({ type: 'DeviceDeactivated', txId: T, body: { hash, deferred: false } });
        else if (policyBool(s, 'dm.use_deferred_removal', c.deferredRemoval)) events.push({ type: 'DeviceDeactivated', txId: T, body: { hash, deferred: true } });
      }
      return events;
    }

    case 'resizePool': {
      const pool = requirePool(s);
      requireNoPending(s);
      const dataSize = checkSize(c.dataSize, 'pool data size');
      if (dataSize < pool.dataSize) throw err('ERR_BAD_SIZE', `pool data size ${dataSize} is smaller than the current ${pool.dataSize} (a pool only grows)`, { value: dataSize });
      const metadataSize = c.metadataSize === undefined ? undefined : checkSize(c.metadataSize, 'pool metadata size');
      if (metadataSize !== undefined && metadataSize < pool.metadataSize) throw err('ERR_BAD_SIZE', `pool metadata size ${metadataSize} is smaller than the current ${pool.metadataSize}`, { value: metadataSize });
      if (dataSize === pool.dataSize && (metadataSize === undefined || metadataSize === pool.metadataSize)) return [];
      return tx(s, 'resizePool', null, { type: 'PoolResized', txId: 0, body: metadataSize === undefined || metadataSize === pool.metadataSize ? { dataSize } : { dataSize, metadataSize } });
    }

    case 'attachPoolDevices': {
      const pool = requirePool(s);
      const dataDevice = checkDeviceText('data device', c.dataDevice);
      const metadataDevice = checkDeviceText('metadata device', c.metadataDevice);
      const dataFile = c.dataFile === undefined ? undefined : checkDeviceText('data file', c.dataFile);
      const metadataFile = c.metadataFile === undefined ? undefined : checkDeviceText('metadata file', c.metadataFile);
      // No requireNoPending: recovering the pending transaction needs the devices where they are now.
      if (dataDevice === pool.dataDevice && metadataDevice === pool.metadataDevice) return [];
      const body: Record<string, unknown> = { dataDevice, metadataDevice };
      if (dataFile !== undefined) body.dataFile = dataFile;
      if (metadataFile !== undefined) body.metadataFile = metadataFile;
      return [{ type: 'PoolDevicesAttached', txId: T, body } as JournalEvent];
    }

    case 'resizeDevice': {
      const hash = checkHash(c.hash, { allowBase: true });
      requirePool(s);
      const d = getDev(s, hash, { live: true });
      const size = checkSize(c.size, 'device size');
      if (size < d.size) throw err('ERR_BAD_SIZE', `device size ${size} is smaller than the current ${d.size} (devices only grow)`, { value: size });
      if (size === d.size) return [];
      return [{ type: 'DeviceResized', txId: T, body: { hash, size } }];
    }

    case 'hasDevice':
      checkHash(c.hash, { allowBase: true });
      return [];
    case 'getDeviceStatus': {
      const hash = checkHash(c.hash, { allowBase: true });
      if (!s.devices.has(hash)) throw err('ERR_DEVICE_NOT_FOUND', `unknown device ${q(hash)}`, { hash });
      return [];
    }
    case 'list':
    case 'status':
      return [];
    case 'snapshotPrepare':
    case 'snapshotCommit':
    case 'snapshotRemove':
    case 'snapshotUpdate':
      return decideSnapshot(s, c);
    default: {
      // Every command type has its case: a new one fails to compile here. At run time, input from outside.
      const unknown: never = c;
      throw new TypeError(`decide: unknown command type ${JSON.stringify((unknown as { type?: unknown }).type)}`);
    }
  }
}

export type DecideResult = { readonly ok: true; readonly events: readonly JournalEvent[] } | { readonly ok: false; readonly error: ThinjournalError };

/** decide, with a coded error returned instead of thrown (TypeErrors still throw). */
export function tryDecide(state: State, command: Command): DecideResult {
  try {
    return { ok: true, events: decide(state, command) };
  } catch (e) {
    if (e instanceof ThinjournalError) return { ok: false, error: e };
    throw e;
  }
}

export function isReadOnly(command: Command): boolean {
  return READ_ONLY.has(command.type);
}
