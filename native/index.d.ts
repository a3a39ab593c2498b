// Types of the @thinjournal/native addon. All calls but dmProbe are asynchronous (a libuv worker thread runs the
// system call); sizes and sectors are numbers when they are safe integers, bigints beyond that.

/** The rejection value of every call: an Error built from errno (never from message text). */
export interface NativeError extends Error {
  /** errno's symbolic name, e.g. "EBUSY", "EEXIST", "EINVAL", "ENXIO". */
  code: string;
  /** errno's value (positive). */
  errno: number;
  /** The failing call: "DM_DEV_CREATE", "DM_TARGET_MSG", "open", "LOOP_CONFIGURE", "mount", ... */
  syscall: string;
  /** The dm device name, when the call concerns one. */
  device?: string;
  /** The file or node path, when the call concerns one. */
  path?: string;
}

export type U64 = number | bigint;

export interface DmTarget {
  start: U64;
  length: U64;
  type: string;
  params: string;
}

export interface DmInfo {
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
  internalSuspend: boolean;
  /** Set by calls given `nodeDir`: the block node made or verified for this device. */
  node?: string;
}

export interface DmListEntry {
  name: string;
  major: number;
  minor: number;
  /** Present with interface >= 4.46. */
  eventNr?: number;
}

export function dmVersion(): Promise<{ major: number; minor: number; patch: number }>;
/** What opening a control node and one DM_VERSION on it gave: facts only (packages/dm decides what they mean). */
export type DmProbeResult =
  | { ok: true; version: { major: number; minor: number; patch: number } }
  /** `error.syscall` is "open" or "DM_VERSION"; `error.path` is the node probed. */
  | { ok: false; error: NativeError };
/**
 * Opens `path` (default /dev/mapper/control) O_RDWR|O_NONBLOCK on a descriptor of its own, issues DM_VERSION
 * and closes it. Synchronous — the one call that is — because a backend is chosen before async work starts;
 * never rejects or throws for a system-call failure (a TypeError for a path that is not a string).
 */
export function dmProbe(path?: string): DmProbeResult;
export function dmListDevices(): Promise<DmListEntry[]>;
export function dmListTargets(): Promise<{ name: string; version: [number, number, number] }[]>;
/** DM_DEV_CREATE; with `table` also DM_TABLE_LOAD + resume. A failure after the create removes the device. */
export function dmCreate(
  name: string,
  opts?: { uuid?: string; readOnly?: boolean; table?: DmTarget[]; nodeDir?: string },
): Promise<DmInfo>;
export function dmLoad(name: string, table: DmTarget[], opts?: { readOnly?: boolean }): Promise<DmInfo>;
export function dmClear(name: string): Promise<DmInfo>;
export function dmSuspend(name: string, opts?: { noFlush?: boolean; skipLockfs?: boolean }): Promise<DmInfo>;
export function dmResume(name: string, opts?: { nodeDir?: string }): Promise<DmInfo>;
export function dmRemove(name: string, opts?: { deferred?: boolean; nodeDir?: string }): Promise<{ removed: boolean; deferred: boolean }>;
export function dmInfo(name: string): Promise<DmInfo>;
export function dmStatus(name: string, opts?: { noFlush?: boolean; inactive?: boolean }): Promise<{ info: DmInfo; targets: DmTarget[] }>;
export function dmTable(name: string, opts?: { inactive?: boolean }): Promise<{ info: DmInfo; targets: DmTarget[] }>;
/** The target's reply text, or null when it sent none. */
export function dmMessage(name: string, sector: U64, message: string): Promise<string | null>;
/** Resolves when the device's event counter differs from `eventNr`; holds a libuv worker thread meanwhile. */
export function dmWaitEvent(name: string, eventNr: number): Promise<DmInfo>;
export function sysfsDmName(minor: number): Promise<string>;
export function mknodBlock(path: string, major: number, minor: number): Promise<void>;
export function ensureDmNode(dir: string, name: string, major: number, minor: number): Promise<string>;
export const dmConstants: { DM_NAME_LEN: number; DM_UUID_LEN: number; DM_MAX_TYPE_NAME: number };

export function loopGetFree(): Promise<number>;
export function loopAttach(
  file: string,
  opts?: { readOnly?: boolean; autoclear?: boolean; directIo?: boolean; partscan?: boolean; blockSize?: number; device?: string },
): Promise<{ device: string; number: number }>;
export function loopDetach(device: string): Promise<void>;
export function loopSetCapacity(device: string): Promise<void>;
export function loopSetAutoclear(device: string, on: boolean): Promise<void>;
export function loopBackingFile(device: string): Promise<string>;

export function blkSize(device: string): Promise<U64>;
export function blkDiscard(device: string, offset: U64, length: U64): Promise<void>;
export function blkZeroOut(device: string, offset: U64, length: U64): Promise<void>;
export function blkFlush(device: string): Promise<void>;

export function mount(source: string, target: string, fstype: string, flags?: number, data?: string): Promise<void>;
export function umount(target: string, flags?: number): Promise<void>;
export const sysConstants: {
  MS_RDONLY: number; MS_NOSUID: number; MS_NODEV: number; MS_NOEXEC: number; MS_REMOUNT: number; MS_BIND: number;
  MS_NOATIME: number; MNT_FORCE: number; MNT_DETACH: number; MNT_EXPIRE: number; UMOUNT_NOFOLLOW: number;
};

// ---- the plan executor (src/plan.cc): one call runs a whole list of kernel steps on a worker thread ----

/** A kernel step, lowered (tables built, names resolved) by TypeScript; each kind has exactly one guard. */
export type PlanStep =
  | { kind: 'createDevice'; name: string; table: DmTarget[]; guard: 'device-absent' }
  | { kind: 'resumeDevice'; name: string; guard: 'suspended' }
  | { kind: 'removeDevice'; name: string; guard: 'device-present' }
  | { kind: 'deleteThin'; pool: string; deviceId: number; guard: 'thin-present' }
  | { kind: 'setTransactionId'; pool: string; from: U64; to: U64; guard: 'txid-is-from' }
  | { kind: 'mount'; device: string; path: string; fsType: string; flags?: number; data?: string; guard: 'not-mounted' };

export interface PlanProgressEvent {
  index: number;
  kind: PlanStep['kind'];
  outcome: 'done' | 'skipped' | 'failed';
  /** errno value of a failed step. */
  errno?: number;
}

export interface PlanRunResult {
  /** One per step that ran to an outcome, in order; a failure stops the plan at `failed.index`. */
  outcomes: ('done' | 'skipped')[];
  failed: { index: number; error: NativeError } | null;
}

/**
 * Runs `steps` in order on one worker thread; stops at the first failure (resolved, not rejected: the result
 * names the failed step and its errno error). `onProgress` is called on the JS thread once per step, in
 * order, before the promise resolves. Misuse (bad step shapes, a guard that is not the kind's) is a
 * synchronous TypeError, before any effect.
 */
export function execPlan(steps: PlanStep[], onProgress?: (e: PlanProgressEvent) => void, opts?: { nodeDir?: string }): Promise<PlanRunResult>;
