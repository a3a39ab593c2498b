/**
 * planRecovery: journal view × kernel view → plan (journal-spec/protocol.md §3–§4). Pure and deterministic:
 * the same inputs give a byte-identical plan (steps in a fixed order, ids sorted), and a plan is plain data
 * that any executor (model backend, kernel backend, native worker) can run and that `--dry-run` prints.
 */
import type { JournalEvent } from '@thinjournal/spec';
import type { PoolGeometry } from '@thinjournal/dm';

/** What recovery needs to know of the journal's state (derived from the model's state). */
export interface JournalView {
  readonly poolName: string;
  /** What re-creating the pool's table after a reboot needs. */
  readonly pool: PoolTableView;
  /** Last committed pool transaction id T. */
  readonly committedTxId: number;
  /** The intent for T+1 without an outcome, if any. */
  readonly pending: PendingIntent | null;
  /** Live devices (not deleted) as of T — before the pending intent. */
  readonly devices: readonly DeviceView[];
  /** Thin devices are activated as `<devicePrefix>-…`: a dm device with this prefix the journal does not know is a stray. */
  readonly devicePrefix: string;
}

/** The pool's devices and geometry in bytes (dm's tables module builds the table from it). */
export type PoolTableView = PoolGeometry;

export interface PendingIntent {
  readonly txId: number;
  /** TransactionBegan.op */
  readonly op: string;
  readonly hash?: string;
  /** Thin ids the intent creates (create_thin / create_snap). */
  readonly creates: readonly number[];
  /** dm devices the intent's kernel steps may have activated on the way (the base image's, for mkfs). */
  readonly activates?: readonly string[];
  /** Thin ids the intent deletes. */
  readonly deletes: readonly { readonly deviceId: number; readonly name: string | null }[];
  /** A pending resizePool's new data size (bytes). */
  readonly dataSize?: number;
}

export interface DeviceView {
  readonly hash: string;
  readonly deviceId: number;
  readonly size: number;
  /** dm name when the journal says the device is active. */
  readonly activeName: string | null;
  readonly mounts: readonly string[];
  /**
   * Deactivated with deferred removal: the kernel removes the dm device at its last close. Absent from the
   * kernel, the removal has completed (or a reboot ended it): recovery records that instead of re-activating.
   */
  readonly removalDeferred?: boolean;
}

/** What recovery needs to know of the kernel (read through a Backend). */
export interface KernelView {
  /** The pool's dm device exists. When false (after a reboot), the ids below come from its metadata device. */
  readonly poolActive: boolean;
  /** null: the pool's metadata could not be read. */
  readonly transactionId: number | null;
  /** Thin ids in the pool's committed metadata. */
  readonly thinIds: readonly number[];
  /** Names of dm devices that exist. */
  readonly devices: readonly string[];
  /** Mount points that are mounted. */
  readonly mounts: readonly string[];
  /** dm devices left suspended (a crash between suspend and resume around create_snap of an active origin). */
  readonly suspended: readonly string[];
  /** The pool's own device is suspended (I/O to every thin device waits). */
  readonly poolSuspended: boolean;
  /** The active pool's table: its devices as `major:minor`, its data size in bytes; null when the pool is not active. */
  readonly poolTable: { readonly dataDevice: string; readonly metadataDevice: string; readonly dataSize: number; readonly blockSize: number } | null;
  /** Why the pool's metadata could not be read (null when it was, or was not tried: a suspended pool). */
  readonly metadataError?: string | null;
  /** What the pool's metadata superblock records (bytes): its data block size and the data size; null when unreadable. */
  readonly metadataGeometry: { readonly blockSize: number; readonly dataSize: number } | null;
  /** The block devices now at the journal's data and metadata paths (`major:minor`, bytes); null when none is there. */
  readonly poolDevices: { readonly data: BlockDeviceView | null; readonly metadata: BlockDeviceView | null };
  /** Live-table target types of dm devices named with the journal's prefix (the pool excluded), by name. */
  readonly targets: Readonly<Record<string, string>>;
}

export interface BlockDeviceView {
  readonly number: string;
  readonly size: number;
}

/**
 * One kernel or journal step of a plan: recovery's (planRecovery, a drift's repair) and replay's
 * (replay.ts). `guard` says when the executor must skip it (already done): idempotence. Kernel steps are
 * lowered to the executor's (execute.ts, packages/dm ExecStep); `append` and `adoptDataSize` are the Engine's.
 * `hash` and `txId` on thin-id steps name the device and transaction a replay step is for (printing only).
 */
export type Step =
  | { readonly kind: 'createPool'; readonly name: string; readonly pool: PoolTableView; readonly guard: 'device-absent' }
  | { readonly kind: 'resumeDevice'; readonly name: string; readonly guard: 'suspended' }
  | { readonly kind: 'deleteThin'; readonly deviceId: number; readonly hash?: string; readonly txId?: number; readonly guard: 'thin-present' }
  | { readonly kind: 'removeDevice'; readonly name: string; readonly guard: 'device-present' }
  | { readonly kind: 'setTransactionId'; readonly from: number; readonly to: number; readonly guard: 'txid-is-from' }
  | { readonly kind: 'activateThin'; readonly name: string; readonly deviceId: number; readonly size: number; readonly guard: 'device-absent' }
  | { readonly kind: 'mount'; readonly hash: string; readonly name: string; readonly path: string; readonly guard: 'not-mounted' }
  /** A pool being built (replay, on empty metadata): create_thin, never skipped. */
  | { readonly kind: 'createThin'; readonly deviceId: number; readonly hash?: string; readonly txId?: number; readonly guard: 'none' }
  /** A pool being built: create_snap of an origin that is not active, never skipped. */
  | { readonly kind: 'createSnap'; readonly deviceId: number; readonly originId: number; readonly hash?: string; readonly txId?: number; readonly guard: 'none' }
  | { readonly kind: 'append'; readonly events: readonly JournalEvent[]; readonly sync: boolean; readonly guard: 'none' }
  /** A repair, run by the Engine as a resizePool transaction: the journal adopts the data size the kernel's pool has. */
  | { readonly kind: 'adoptDataSize'; readonly dataSize: number; readonly guard: 'none' };

export type Verdict = 'in-sync' | 'roll-forward' | 'roll-back' | 'complete' | 'drift';

export interface Drift {
  /** Thin ids the kernel has that the journal does not know. */
  readonly kernelOnly: readonly number[];
  /** Journal devices whose thin id the kernel lacks. */
  readonly journalOnly: readonly { readonly hash: string; readonly deviceId: number }[];
  /** Transaction ids: journal committed T (pending T+1?) vs kernel K. */
  readonly journalTxId: number;
  readonly pendingTxId: number | null;
  readonly kernelTxId: number | null;
  readonly message: string;
  /** One line per disagreement besides thin ids and transaction ids (pool geometry, identity, tables, strays). */
  readonly findings: readonly string[];
  /** Disagreements no repair is offered for (the operator must act: e.g. a foreign device at a journaled path). */
  readonly refusals: readonly string[];
}

export interface RecoveryPlan {
  readonly verdict: Verdict;
  readonly reason: string;
  /** Steps in order. Empty when in sync (and everything active is active). */
  readonly steps: readonly Step[];
  /** Present when verdict = 'drift': nothing is changed; `repair` is offered for an operator to confirm. */
  readonly drift?: Drift;
  readonly repair?: readonly Step[];
}

/** Operations whose unfinished intent is completed rather than undone (protocol.md §4). */
const ROLL_FORWARD_OPS: ReadonlySet<string> = new Set(['deleteDevice', 'resizePool']);

const byNumber = (a: number, b: number) => a - b;

function diffIds(kernel: readonly number[], expected: readonly number[]): { kernelOnly: number[]; missing: number[] } {
  const k = new Set(kernel);
  const e = new Set(expected);
  return { kernelOnly: [...k].filter((id) => !e.has(id)).sort(byNumber), missing: [...e].filter((id) => !k.has(id)).sort(byNumber) };
}

/**
 * Re-activation and re-mount of what the journal says is active/mounted but the kernel lacks (after a reboot).
 * A device whose deferred removal the kernel has completed is not brought back: its deactivation is recorded
 * (txId: the committed transaction id once the plan's earlier steps have run).
 */
function restoreSteps(j: JournalView, k: KernelView, deleting: ReadonlySet<number>, txId: number): Step[] {
  const steps: Step[] = [];
  const present = new Set(k.devices);
  const mounted = new Set(k.mounts);
  const devices = [...j.devices].sort((a, b) => a.deviceId - b.deviceId);
  const removed = devices.filter((d) => d.activeName && d.removalDeferred && !present.has(d.activeName) && !deleting.has(d.deviceId));
  for (const d of devices) {
    if (!d.activeName || deleting.has(d.deviceId) || removed.includes(d)) continue;
    if (!present.has(d.activeName)) steps.push({ kind: 'activateThin', name: d.activeName, deviceId: d.deviceId, size: d.size, guard: 'device-absent' });
  }
  if (removed.length) {
    const reason = 'deferred removal completed';
    steps.push({ kind: 'append', events: removed.map((d) => ({ type: 'DeviceDeactivated', txId, body: { hash: d.hash, deferred: false }, actor: 'recovery', reason }) as JournalEvent), sync: false, guard: 'none' });
  }
  for (const d of devices) {
    if (!d.activeName || deleting.has(d.deviceId) || removed.includes(d)) continue;
    for (const path of [...d.mounts].sort()) {
      if (!mounted.has(path)) steps.push({ kind: 'mount', hash: d.hash, name: d.activeName, path, guard: 'not-mounted' });
    }
  }
  return steps;
}

function drift(j: JournalView, k: KernelView, expectedIds: readonly number[], message: string): RecoveryPlan {
  const { kernelOnly, missing } = diffIds(k.thinIds, expectedIds);
  const byId = new Map(j.devices.map((d) => [d.deviceId, d]));
  const journalOnly = missing.map((id) => ({ hash: byId.get(id)?.hash ?? `(pending ${j.pending?.op ?? ''})`, deviceId: id }));
  // The repair an operator may confirm: drop the kernel's unknown thin ids (their data is lost) and, when the
  // transaction ids disagree, move the kernel's id to the journal's. Devices the kernel lost cannot be
  // brought back; the report names them.
  const repair: Step[] = kernelOnly.map((id) => ({ kind: 'deleteThin', deviceId: id, guard: 'thin-present' }));
  if (k.transactionId !== null && k.transactionId !== j.committedTxId) {
    repair.push({ kind: 'setTransactionId', from: k.transactionId, to: j.committedTxId, guard: 'txid-is-from' });
  }
  return {
    verdict: 'drift',
    reason: message,
    steps: [],
    drift: { kernelOnly, journalOnly, journalTxId: j.committedTxId, pendingTxId: j.pending?.txId ?? null, kernelTxId: k.transactionId, message, findings: [], refusals: [] },
    repair,
  };
}

/** Disagreements found beside the transaction protocol's: each a line, and the repair steps it offers. */
interface Findings {
  readonly lines: string[];
  readonly refusals: string[];
  readonly repair: Step[];
}

const MiB = 1024 * 1024;
const bytes = (n: number) => (n % MiB === 0 ? `${n / MiB} MiB` : `${n} bytes`);

/**
 * The data size the pool's table is built with: the journal's, a pending resize's once the data device can
 * hold it (completing it is the roll-forward), never less than the metadata records (the kernel refuses a
 * table shorter than its data space map at resume).
 */
function tableDataSize(j: JournalView, k: KernelView): number {
  const device = k.poolDevices.data?.size ?? 0;
  const pending = j.pending?.dataSize !== undefined && device >= j.pending.dataSize ? j.pending.dataSize : 0;
  return Math.max(j.pool.dataSize, pending, k.metadataGeometry?.dataSize ?? 0);
}

/** The pool's table re-created after a reboot, at tableDataSize (never below what an adoptDataSize repair adopts). */
function createPoolStep(j: JournalView, k: KernelView): Step {
  return { kind: 'createPool', name: j.poolName, pool: { ...j.pool, dataSize: tableDataSize(j, k) }, guard: 'device-absent' };
}

/**
 * What the transaction ids and thin ids cannot show: whether the pool the kernel has (or would be built) is
 * on the journal's own devices, whether its geometry is the journal's, and whether every dm device under the
 * journal's prefix is one the journal activated, with the table it loaded, running.
 */
function findings(j: JournalView, k: KernelView): Findings {
  const f: Findings = { lines: [], refusals: [], repair: [] };
  const { data, metadata } = k.poolDevices;
  const bs = j.pool.blockSize;
  // Identity: a pool is never assembled on, nor kept on, devices the journal cannot identify as its own.
  if (!data) f.refusals.push(`no block device at the journal's data device ${j.pool.dataDevice}`);
  if (!metadata) f.refusals.push(`no block device at the journal's metadata device ${j.pool.metadataDevice}`);
  if (k.poolTable && data && k.poolTable.dataDevice !== data.number) {
    f.refusals.push(`the pool ${j.poolName} is active on data device ${k.poolTable.dataDevice}, not on the journal's ${j.pool.dataDevice} (${data.number})`);
  }
  if (k.poolTable && metadata && k.poolTable.metadataDevice !== metadata.number) {
    f.refusals.push(`the pool ${j.poolName} is active on metadata device ${k.poolTable.metadataDevice}, not on the journal's ${j.pool.metadataDevice} (${metadata.number})`);
  }
  const g = k.metadataGeometry;
  if (g && g.blockSize !== bs) {
    f.refusals.push(`the metadata on ${j.pool.metadataDevice} is for data blocks of ${bytes(g.blockSize)}, the journal's pool has ${bytes(bs)}: not this pool's metadata`);
  }
  if (g && data && g.blockSize === bs && g.dataSize > data.size) {
    f.refusals.push(`the metadata on ${j.pool.metadataDevice} records ${bytes(g.dataSize)} of data, the device at ${j.pool.dataDevice} has ${bytes(data.size)}: not this pool's data device`);
  }
  if (data && !k.poolTable && data.size < j.pool.dataSize) {
    f.refusals.push(`the device at ${j.pool.dataDevice} has ${bytes(data.size)}, the journal's pool ${bytes(j.pool.dataSize)}: not this pool's data device`);
  }
  if (f.refusals.length) return f;

  // Geometry: the data size the kernel's pool has, beyond what the journal knows, is adopted by a repair.
  const blocks = (n: number) => Math.floor(n / bs);
  const expected = Math.max(blocks(j.pool.dataSize), blocks(j.pending?.dataSize ?? 0));
  const observed = k.poolTable ? blocks(k.poolTable.dataSize) : g ? blocks(g.dataSize) : null;
  if (observed !== null && observed > expected) {
    f.lines.push(`the pool's data grew outside the journal: the kernel has ${bytes(observed * bs)} (${observed} blocks), the journal ${bytes(expected * bs)} (${expected} blocks)`);
    f.repair.push({ kind: 'adoptDataSize', dataSize: observed * bs, guard: 'none' });
  }

  // dm devices under the journal's prefix: the journal's own with the table it loaded, and no others.
  const active = new Map(j.devices.filter((d) => d.activeName).map((d) => [d.activeName!, d]));
  const pendingNames = new Set(j.pending?.activates ?? []);
  const mounted = new Set(k.mounts);
  for (const name of Object.keys(k.targets).sort()) {
    const type = k.targets[name]!;
    const d = active.get(name);
    if (!d) {
      if (pendingNames.has(name)) continue;
      f.lines.push(`dm device ${name} carries the journal's prefix but the journal never activated it (a ${type} device)`);
      f.repair.push({ kind: 'removeDevice', name, guard: 'device-present' });
    } else if (type !== 'thin') {
      const busy = d.mounts.filter((p) => mounted.has(p));
      f.lines.push(`dm device ${name} (${JSON.stringify(d.hash)}) has a table of type ${type}, not thin (removed by force while open?)`);
      if (busy.length) f.refusals.push(`${name} is still mounted at ${busy.join(', ')}: unmount it, then recover re-activates and re-mounts it`);
      else f.repair.push({ kind: 'removeDevice', name, guard: 'device-present' });
    }
  }
  return f;
}

/** A drift report without thin-id differences (the findings say what differs). */
function noIdDrift(j: JournalView, kernelTxId: number | null, message: string): Drift {
  return { kernelOnly: [], journalOnly: [], journalTxId: j.committedTxId, pendingTxId: j.pending?.txId ?? null, kernelTxId, message, findings: [], refusals: [] };
}

/** A drift plan with the findings merged in: one report, one repair (nothing offered while anything is refused). */
function withFindings(j: JournalView, k: KernelView, plan: RecoveryPlan, f: Findings): RecoveryPlan {
  const base = plan.verdict === 'drift' ? plan : null;
  const drift = base?.drift ?? noIdDrift(j, k.transactionId, '');
  const reason = [base?.reason, ...f.refusals, ...f.lines].filter((x): x is string => !!x).join('; ');
  // After a reboot every repair needs the pool's table first — but only over metadata that could be read:
  // building a table over unreadable metadata would format it.
  const create: Step[] = !k.poolActive && k.metadataGeometry
    ? [createPoolStep(j, k)]
    : [];
  const repair = f.refusals.length ? [] : [...create, ...f.repair, ...(base?.repair ?? [])];
  return { verdict: 'drift', reason, steps: [], drift: { ...drift, message: reason, findings: [...f.lines], refusals: [...f.refusals] }, repair };
}

export function planRecovery(j: JournalView, k: KernelView): RecoveryPlan {
  if (k.poolSuspended) {
    // Nothing of the pool's metadata was read: the resume first, then recovery plans again on a live pool.
    const line = `the pool ${j.poolName} is suspended: I/O to every thin device waits`;
    const drift: Drift = { ...noIdDrift(j, null, line), findings: [line] };
    return { verdict: 'drift', reason: line, steps: [], drift, repair: [{ kind: 'resumeDevice', name: j.poolName, guard: 'suspended' }] };
  }
  const f = findings(j, k);
  const plan = decidePlan(j, k);
  if (plan.verdict === 'drift' || f.lines.length || f.refusals.length) return withFindings(j, k, plan, f);
  if (!k.poolActive) {
    // After a reboot: the pool's table first, then everything else (its metadata says where it was).
    const create = createPoolStep(j, k);
    return { ...plan, verdict: plan.verdict === 'in-sync' ? 'complete' : plan.verdict, reason: `the pool is not active (reboot?); re-creating it. ${plan.reason}`, steps: [create, ...plan.steps] };
  }
  if (k.suspended.length === 0) return plan;
  // First of all, resume what a crash left suspended (I/O to it, and to its snapshots, is frozen until then).
  const resumes: Step[] = [...k.suspended].sort().map((name) => ({ kind: 'resumeDevice', name, guard: 'suspended' }));
  return { ...plan, verdict: plan.verdict === 'in-sync' ? 'complete' : plan.verdict, steps: [...resumes, ...plan.steps] };
}

function decidePlan(j: JournalView, k: KernelView): RecoveryPlan {
  const T = j.committedTxId;
  const K = k.transactionId;
  const P = j.pending;
  const liveIds = j.devices.map((d) => d.deviceId);
  if (K === null) return drift(j, k, liveIds, `the pool is not active and its metadata could not be read${k.metadataError ? ` (${k.metadataError})` : ''}`);

  if (P === null) {
    if (K !== T) return drift(j, k, liveIds, `the kernel's transaction id is ${K}, the journal's is ${T} with no transaction in progress`);
    const { kernelOnly, missing } = diffIds(k.thinIds, liveIds);
    if (kernelOnly.length || missing.length) return drift(j, k, liveIds, `thin ids differ at transaction ${T}`);
    const steps = restoreSteps(j, k, new Set(), T);
    return { verdict: 'in-sync', reason: steps.length ? `in sync at transaction ${T}; restoring activations and mounts` : `in sync at transaction ${T}`, steps };
  }

  const deleting = new Set(P.deletes.map((d) => d.deviceId));
  const afterIds = [...liveIds.filter((id) => !deleting.has(id)), ...P.creates];
  const committed = (reason: string, extra: Step[]): RecoveryPlan => ({
    verdict: extra.length ? 'complete' : 'roll-forward',
    reason,
    steps: [...extra, { kind: 'append', events: [{ type: 'TransactionCommitted', txId: P.txId, body: {}, actor: 'recovery', reason }], sync: true, guard: 'none' }, ...restoreSteps(j, k, deleting, P.txId)],
  });

  if (K === P.txId) {
    const { kernelOnly, missing } = diffIds(k.thinIds, afterIds);
    if (kernelOnly.length || missing.length) return drift(j, k, afterIds, `the kernel committed transaction ${K} but its thin ids differ from the intent's result`);
    return committed(`the kernel committed transaction ${K} (${P.op}); the journal's outcome record was lost`, []);
  }
  if (K !== T) return drift(j, k, liveIds, `the kernel's transaction id is ${K}; the journal committed ${T} and intends ${P.txId}`);

  // K = T: the intent did not reach its commit point. The kernel may hold some of its effects.
  const kernelIds = new Set(k.thinIds);
  const unknown = diffIds(k.thinIds, [...liveIds, ...P.creates]).kernelOnly;
  if (unknown.length) return drift(j, k, liveIds, `the kernel has thin ids the journal never had`);
  const lost = liveIds.filter((id) => !kernelIds.has(id) && !deleting.has(id));
  if (lost.length) return drift(j, k, liveIds, `the kernel lacks thin ids of committed devices`);

  if (ROLL_FORWARD_OPS.has(P.op)) {
    const steps: Step[] = [];
    for (const d of [...P.deletes].sort((a, b) => a.deviceId - b.deviceId)) {
      if (d.name) steps.push({ kind: 'removeDevice', name: d.name, guard: 'device-present' });
      steps.push({ kind: 'deleteThin', deviceId: d.deviceId, guard: 'thin-present' });
    }
    steps.push({ kind: 'setTransactionId', from: T, to: P.txId, guard: 'txid-is-from' });
    return committed(`transaction ${P.txId} (${P.op}) did not reach its commit point; completing it`, steps);
  }
  const reason = `transaction ${P.txId} (${P.op}) did not reach its commit point; undoing it`;
  const present = new Set(k.devices);
  const steps: Step[] = [...(P.activates ?? [])].sort().filter((name) => present.has(name))
    .map((name) => ({ kind: 'removeDevice', name, guard: 'device-present' }) as const);
  steps.push(...[...P.creates].sort(byNumber).filter((id) => kernelIds.has(id))
    .map((id) => ({ kind: 'deleteThin', deviceId: id, guard: 'thin-present' }) as const));
  steps.push({ kind: 'append', events: [{ type: 'TransactionRolledBack', txId: P.txId, body: { reason }, actor: 'recovery', reason }], sync: true, guard: 'none' });
  steps.push(...restoreSteps(j, k, new Set(), T));
  return { verdict: 'roll-back', reason, steps };
}

/** One line of a step, for plans printed to an operator and for the steps a RepairBegan records. */
export function describeStep(s: Step): string {
  const of = (x: { hash?: string; txId?: number }, withTx = true) => (x.hash === undefined ? '' : ` (${JSON.stringify(x.hash)}${withTx && x.txId !== undefined ? `, tx ${x.txId}` : ''})`);
  switch (s.kind) {
    case 'createPool': return `create pool ${s.name} (data ${s.pool.dataDevice}, metadata ${s.pool.metadataDevice}, ${s.pool.dataSize} bytes, block ${s.pool.blockSize})`;
    case 'resumeDevice': return `resume ${s.name}`;
    case 'removeDevice': return `remove dm device ${s.name}`;
    case 'deleteThin': return `delete thin id ${s.deviceId}${of(s, false)}`;
    case 'setTransactionId': return `set_transaction_id ${s.from} ${s.to}`;
    case 'activateThin': return `activate thin id ${s.deviceId} as ${s.name}`;
    case 'mount': return `mount ${s.name} at ${s.path}`;
    case 'createThin': return `create_thin ${s.deviceId}${of(s)}`;
    case 'createSnap': return `create_snap ${s.deviceId} ${s.originId}${of(s)}`;
    case 'append': return `journal: ${s.events.map((e) => `${e.type}{tx ${e.txId}}`).join(', ')}`;
    case 'adoptDataSize': return `journal the kernel's pool data size ${s.dataSize} bytes (a resizePool transaction)`;
  }
}

/** Canonical bytes of a plan (for "same inputs → byte-identical plan" and for printing with --json). */
export function planJson(plan: RecoveryPlan): string {
  return JSON.stringify(plan);
}
