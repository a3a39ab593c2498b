/**
 * Is there a usable device-mapper here? Answered by working the interface — open the control node and issue
 * DM_VERSION (native `dmProbe`) — never by a file's existence: packages (Debian's dmsetup and containerd),
 * container runtimes and WSL make a `/dev/mapper/control` node whether or not the running kernel has
 * device-mapper, and opening such a node gives ENODEV.
 *
 * Two halves, so that the policy is testable without root, a kernel or the addon:
 *  - `gatherDmFacts`: what the machine says — the native probe's result (or why the addon cannot load),
 *    /proc/misc's text, the uid. Facts only.
 *  - `decideDeviceMapper`: pure, facts → `{ available, reason, version? }`. DM_VERSION answering is the one
 *    thing that makes device-mapper available; /proc/misc and the uid only make the reason precise (a
 *    module not loaded yet is absent from /proc/misc until opening the node loads it, so /proc/misc alone
 *    never decides). The reason is a plain sentence, the first clause the short answer, for messages.
 * `probeDeviceMapper()` with no options probes this process's default paths once and keeps the answer, so
 * every consumer in a process (the driver's default backend, the CLI, the demo, the test runner) agrees.
 */
import { readFileSync } from 'node:fs';
import { ThinjournalError } from '@thinjournal/spec';
import { KernelBackend, loadNative, type KernelBackendOptions } from './kernel.js';

type Native = typeof import('@thinjournal/native');
type NativeProbeResult = import('@thinjournal/native').DmProbeResult;

export const DM_CONTROL_PATH = '/dev/mapper/control';
export const PROC_MISC_PATH = '/proc/misc';

export interface DmVersion {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
}

/** What the native side could tell: the probe's result, or why the addon could not be asked. */
export type NativeProbeFact =
  | { readonly kind: 'probed'; readonly result: NativeProbeResult }
  | { readonly kind: 'unloadable'; readonly message: string; readonly error: unknown };

export interface DmFacts {
  /** The control node that was (or would have been) opened. */
  readonly controlPath: string;
  readonly native: NativeProbeFact;
  /** /proc/misc's text; null when it could not be read. */
  readonly procMisc: string | null;
  /** The process's uid; null where the platform has none (no process.getuid). */
  readonly uid: number | null;
}

export type DeviceMapperProbe =
  | { readonly available: true; readonly reason: string; readonly controlPath: string; readonly version: DmVersion }
  /** `cause`: the native errno error of the failing call, or the addon's load error; absent otherwise. */
  | { readonly available: false; readonly reason: string; readonly controlPath: string; readonly cause?: unknown };

export interface ProbeOptions {
  /** Default /dev/mapper/control. */
  readonly controlPath?: string;
  /** Default /proc/misc. */
  readonly procMiscPath?: string;
  /** Default process.getuid(), or null where there is none. */
  readonly uid?: number | null;
  /** The addon loader; default loadNative (tests inject one that fails). */
  readonly loadNative?: () => Pick<Native, 'dmProbe'>;
}

/** The misc minor /proc/misc lists for `name` (device-mapper's is usually 236), or null. */
export function miscMinor(procMisc: string, name = 'device-mapper'): number | null {
  for (const line of procMisc.split('\n')) {
    const m = /^\s*(\d+)\s+(\S+)\s*$/.exec(line);
    if (m && m[2] === name) return Number(m[1]);
  }
  return null;
}

function messageOf(err: unknown): string {
  // loadNative wraps the require error; the inner message is the one that says what is wrong.
  const inner = err instanceof Error && err.cause instanceof Error ? err.cause : err;
  return inner instanceof Error ? inner.message : String(inner);
}

/** Reads what the machine says. Never throws for what it finds (a missing addon or node is a fact). */
export function gatherDmFacts(opts: ProbeOptions = {}): DmFacts {
  const controlPath = opts.controlPath ?? DM_CONTROL_PATH;
  let procMisc: string | null;
  try {
    procMisc = readFileSync(opts.procMiscPath ?? PROC_MISC_PATH, 'utf8');
  } catch {
    procMisc = null;
  }
  const uid = opts.uid !== undefined ? opts.uid : (process.getuid?.() ?? null);
  let native: NativeProbeFact;
  try {
    const n = (opts.loadNative ?? loadNative)();
    native = typeof n.dmProbe === 'function'
      ? { kind: 'probed', result: n.dmProbe(controlPath) }
      : { kind: 'unloadable', message: '@thinjournal/native has no dmProbe: it was built from older sources (rebuild it: node native/build.mjs)', error: undefined };
  } catch (err) {
    native = { kind: 'unloadable', message: messageOf(err), error: err };
  }
  return { controlPath, native, procMisc, uid };
}

/** Facts → the answer and its reason. Pure. */
export function decideDeviceMapper(f: DmFacts): DeviceMapperProbe {
  const path = f.controlPath;
  const minor = f.procMisc === null ? null : miscMinor(f.procMisc);
  const miscHasNone = f.procMisc !== null && minor === null;
  const no = (reason: string, cause?: unknown): DeviceMapperProbe =>
    cause === undefined ? { available: false, reason, controlPath: path } : { available: false, reason, controlPath: path, cause };

  if (f.native.kind === 'unloadable') {
    return no(`the native addon is not built or cannot load: ${f.native.message}${miscHasNone ? ' (and /proc/misc lists no device-mapper)' : ''}`, f.native.error);
  }
  const r = f.native.result;
  if (r.ok) {
    const { major, minor: mi, patch } = r.version;
    return { available: true, reason: `device-mapper ${major}.${mi}.${patch} answers DM_VERSION on ${path}`, controlPath: path, version: { major, minor: mi, patch } };
  }
  const e = r.error;
  const code = e.code;
  const denied = code === 'EACCES' || code === 'EPERM';
  const mknod = minor === null ? '' : ` (mknod ${path} c 10 ${minor})`;
  if (e.syscall === 'open') {
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      if (minor !== null) return no(`device-mapper is in this kernel (misc minor ${minor}) but ${path} does not exist: no devtmpfs or udev made the node${mknod}`, e);
      return no(`no device-mapper here: ${path} does not exist${miscHasNone ? ' and /proc/misc lists no device-mapper' : ''}`, e);
    }
    if (code === 'ENODEV' || code === 'ENXIO') {
      if (minor !== null) return no(`${path} is not this kernel's device-mapper node: opening it gives ${code}, but /proc/misc lists device-mapper as misc minor ${minor}${mknod}`, e);
      return no(`no device-mapper in this kernel: ${path} exists but opening it gives ${code}${miscHasNone ? ', and /proc/misc lists no device-mapper' : ''}`, e);
    }
    if (denied) {
      if (f.uid === 0) return no(`opening ${path} gives ${code} although this process is root (a nodev mount, or a container that does not grant the device)`, e);
      if (f.uid !== null) return no(`not root: opening ${path} gives ${code}`, e);
    }
    return no(`opening ${path} gives ${code}`, e);
  }
  if (denied) {
    if (f.uid === 0) return no(`DM_VERSION on ${path} gives ${code} although this process is root: it lacks CAP_SYS_ADMIN in the initial user namespace (a container?)`, e);
    if (f.uid !== null) return no(`not root: DM_VERSION on ${path} gives ${code} (device-mapper needs CAP_SYS_ADMIN)`, e);
    return no(`DM_VERSION on ${path} gives ${code} (device-mapper needs CAP_SYS_ADMIN)`, e);
  }
  return no(`${path} is not a device-mapper control node: DM_VERSION on it gives ${code}${minor === null ? '' : `; this kernel's is misc minor ${minor}${mknod}`}`, e);
}

let cached: DeviceMapperProbe | null = null;

/**
 * Whether this process can use device-mapper, and why not. Without options: this machine's default paths,
 * probed once per process (the answer is kept). With options (injected paths, uid or loader): probed afresh.
 */
export function probeDeviceMapper(opts?: ProbeOptions): DeviceMapperProbe {
  if (opts !== undefined) return decideDeviceMapper(gatherDmFacts(opts));
  cached ??= decideDeviceMapper(gatherDmFacts());
  return cached;
}

/**
 * The kernel backend where the probe says device-mapper is usable; otherwise `ERR_NATIVE_UNAVAILABLE` whose
 * message is the probe's reason, followed by `context` in parentheses when given (what the caller needed the
 * kernel for, or what to do instead). `reason` is also a property of the error; `cause` is the probe's.
 */
export function requireKernelBackend(context?: string, opts: KernelBackendOptions = {}): KernelBackend {
  const p = probeDeviceMapper();
  if (!p.available) {
    throw new ThinjournalError('ERR_NATIVE_UNAVAILABLE', context ? `${p.reason} (${context})` : p.reason, {
      reason: p.reason,
      ...(p.cause !== undefined ? { cause: p.cause } : {}),
    });
  }
  return new KernelBackend(opts);
}
