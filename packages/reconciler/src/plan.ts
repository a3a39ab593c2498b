/**
 * planRecovery: journal view × kernel view → plan (journal-spec/protocol.md §3–§4). Pure and deterministic:
 * the same inputs give a byte-identical plan (steps in a fixed order, ids sorted), and a plan is plain data
 * that any executor (model backend, kernel backend, native worker) can run and that `--dry-run` prints.
 */
import type { JournalEvent } from '@thinjournal/spec';

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
}

export interface PoolTableView {
  readonly dataDevice: string;
  readonly metadataDevice: string;
  readonly dataSize: number;
  readonly blockSize: number;
}

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
}

/** One kernel or journal step. `guard` says when the executor must skip it (already done): idempotence. */
export type Step =
  | { readonly kind: 'createPool'; readonly name: string; readonly pool: PoolTableView; readonly guard: 'device-absent' }
  | { readonly kind: 'resumeDevice'; readonly name: string; readonly guard: 'suspended' }
  | { readonly kind: 'deleteThin'; readonly deviceId: number; readonly guard: 'thin-present' }
  | { readonly kind: 'removeDevice'; readonly name: string; readonly guard: 'device-present' }
  | { readonly kind: 'setTransactionId'; readonly from: number; readonly to: number; readonly guard: 'txid-is-from' }
  | { readonly kind: 'activateThin'; readonly name: string; readonly deviceId: number; readonly size: number; readonly guard: 'device-absent' }
  | { readonly kind: 'mount'; readonly hash: string; readonly name: string; readonly path: string; readonly guard: 'not-mounted' }
  | { readonly kind: 'append'; readonly events: readonly JournalEvent[]; readonly sync: boolean; readonly guard: 'none' };

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
    drift: { kernelOnly, journalOnly, journalTxId: j.committedTxId, pendingTxId: j.pending?.txId ?? null, kernelTxId: k.transactionId, message },
    repair,
  };
}

export function planRecovery(j: JournalView, k: KernelView): RecoveryPlan {
  const plan = decidePlan(j, k);
  if (plan.verdict === 'drift') return plan;
  if (!k.poolActive) {
    // After a reboot: the pool's table first, then everything else (its metadata says where it was).
    const create: Step = { kind: 'createPool', name: j.poolName, pool: j.pool, guard: 'device-absent' };
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
  if (K === null) return drift(j, k, liveIds, 'the pool is not active and its metadata could not be read');

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

/** Canonical bytes of a plan (for "same inputs → byte-identical plan" and for printing with --json). */
export function planJson(plan: RecoveryPlan): string {
  return JSON.stringify(plan);
}
