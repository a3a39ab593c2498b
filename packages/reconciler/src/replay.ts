/**
 * Replay into device-mapper: rebuild a pool on an empty metadata device from the journal alone.
 * The result has the same thin device ids, the same snapshot lineage and the same transaction id as the
 * journal's state at the chosen point. Data is not in the journal: thin devices come back empty (snapshots
 * share the blocks of their — empty — origins), and the base image's filesystem is not re-created.
 *
 * planReplay is pure: records → plan (plain data, for --dry-run) + the model state it leads to. Its steps are
 * plan steps (plan.ts), run by applyReplay through the same executor as a recovery plan (execute.ts).
 */
import { ThinjournalError, type JournalRecord } from '@thinjournal/spec';
import { Projection, stateHash, type State } from '@thinjournal/model';
import { formatFreshMetadata, isFsType, type Backend } from '@thinjournal/dm';
import { applyRecord, eventOf } from './apply.js';
import { runPlan } from './execute.js';
import type { Step } from './plan.js';

/** The steps a replay plan has: the pool's creation and its thin ids and transaction ids. */
export type ReplayStep = Extract<Step, { kind: 'createPool' | 'createThin' | 'createSnap' | 'deleteThin' | 'setTransactionId' }>;

export interface ReplayTarget {
  /** Stop after this seq (inclusive). */
  readonly toSeq?: number;
  /** Stop after this pool transaction id is committed. */
  readonly toTxId?: number;
  /** Build on these devices instead of the journal's (e.g. a spare metadata device). */
  readonly dataDevice?: string;
  readonly metadataDevice?: string;
  /** dm name for the rebuilt pool (default: the journal's). */
  readonly poolName?: string;
}

export interface ReplayPlan {
  readonly steps: readonly ReplayStep[];
  /** The journal's state at the stopping point (what the rebuilt pool must match). */
  readonly state: State;
  readonly stateHash: string;
  readonly lastSeq: number;
  readonly transactionId: number;
  /** Transactions skipped because they were rolled back or never finished. */
  readonly skippedTransactions: readonly { readonly txId: number; readonly outcome: 'rolled-back' | 'unfinished' }[];
}

/** Builds the replay plan from records in seq order. A record the model cannot apply is ERR_JOURNAL_CORRUPT (reason `model`). */
export function planReplay(records: Iterable<JournalRecord>, target: ReplayTarget = {}): ReplayPlan {
  const p = new Projection();
  const steps: ReplayStep[] = [];
  const skipped: { txId: number; outcome: 'rolled-back' | 'unfinished' }[] = [];
  let pendingSteps: ReplayStep[] = [];
  let pendingTx: number | null = null;
  let lastSeq = 0;
  for (const r of records) {
    if (target.toSeq !== undefined && r.seq > target.toSeq) break;
    if (target.toTxId !== undefined && pendingTx === null && r.type === 'TransactionBegan' && r.txId > target.toTxId) break;
    const before = p.state;
    applyRecord(p, r);
    lastSeq = r.seq;
    const e = eventOf(r);
    switch (e.type) {
      case 'PoolInitialised': {
        const pool = p.state.pool!;
        steps.push({
          kind: 'createPool', name: target.poolName ?? pool.poolName,
          pool: { dataDevice: target.dataDevice ?? pool.dataDevice, metadataDevice: target.metadataDevice ?? pool.metadataDevice, dataSize: pool.dataSize, blockSize: pool.blockSize },
          guard: 'device-absent',
        });
        // An adopted pool starts at its own transaction id; a fresh metadata device starts at 0.
        if (r.txId !== 0) steps.push({ kind: 'setTransactionId', from: 0, to: r.txId, guard: 'txid-is-from' });
        break;
      }
      case 'TransactionBegan':
        pendingTx = r.txId;
        pendingSteps = [];
        break;
      case 'BaseImageCreated':
      case 'DeviceCreated':
        pendingSteps.push({ kind: 'createThin', deviceId: e.body.deviceId, txId: r.txId, hash: e.body.hash, guard: 'none' });
        break;
      case 'SnapshotCreated':
        pendingSteps.push({ kind: 'createSnap', deviceId: e.body.deviceId, originId: e.body.parentDeviceId, txId: r.txId, hash: e.body.hash, guard: 'none' });
        break;
      case 'DeviceDeleted':
        pendingSteps.push({ kind: 'deleteThin', deviceId: e.body.deviceId, txId: r.txId, hash: e.body.hash, guard: 'thin-present' });
        break;
      case 'TransactionCommitted':
        steps.push(...pendingSteps, { kind: 'setTransactionId', from: before.txId, to: r.txId, guard: 'txid-is-from' });
        pendingSteps = [];
        pendingTx = null;
        break;
      case 'TransactionRolledBack':
        skipped.push({ txId: r.txId, outcome: 'rolled-back' });
        pendingSteps = [];
        pendingTx = null;
        break;
      default:
        break; // PoolResized: the table is built at the final size below; activations and mounts: not pool metadata
    }
    if (target.toTxId !== undefined && pendingTx === null && p.state.txId >= target.toTxId && r.type === 'TransactionCommitted') break;
  }
  if (pendingTx !== null) skipped.push({ txId: pendingTx, outcome: 'unfinished' });
  const state = p.state;
  if (!state.pool) throw new ThinjournalError('ERR_POOL_NOT_INITIALISED', 'the journal has no PoolInitialised before the stopping point');
  // The pool's table uses the data size in force at the end (PoolResized only grows it), and the devices the
  // journal last named (PoolDevicesAttached after a reboot moved the loop devices) unless the caller chose.
  const first = steps[0];
  if (first?.kind === 'createPool') {
    steps[0] = { ...first, pool: {
      ...first.pool, dataSize: state.pool.dataSize,
      dataDevice: target.dataDevice ?? state.pool.dataDevice, metadataDevice: target.metadataDevice ?? state.pool.metadataDevice,
    } };
  }
  return { steps, state, stateHash: stateHash(state), lastSeq, transactionId: state.txId, skippedTransactions: skipped };
}

export interface ReplayResult {
  readonly completed: number;
  /** The rebuilt pool's committed metadata. */
  readonly transactionId: number;
  readonly ids: readonly number[];
  /** true when the rebuilt pool's transaction id and thin ids equal the journal state's. */
  readonly matches: boolean;
}

/**
 * Runs a replay plan on a backend. The metadata device must be empty (no pool metadata on it) and no dm
 * device may have the rebuilt pool's name: replay never overwrites, nor adds to, a pool. The steps run
 * through the plan executor (runPlan) in order; the first failure stops it (the error says which step:
 * `step`/`planIndex` and `stepKind`).
 */
export async function applyReplay(plan: ReplayPlan, backend: Backend, opts: { onStep?: (i: number, total: number) => void } = {}): Promise<ReplayResult> {
  const create = plan.steps[0];
  if (create?.kind !== 'createPool') throw new TypeError('applyReplay: a replay plan starts with createPool');
  const existing = await backend.readMetadata(create.pool.metadataDevice).catch(() => null);
  if (existing && (existing.transactionId !== 0 || existing.ids.length)) {
    throw new ThinjournalError('ERR_POOL_EXISTS', `${create.pool.metadataDevice} holds a pool (transaction ${existing.transactionId}, ${existing.ids.length} thin devices); replay needs an empty metadata device`, { device: create.pool.metadataDevice });
  }
  // createPool's guard would skip a device that exists: here that is someone else's pool.
  if (await backend.info(create.name)) {
    throw new ThinjournalError('ERR_POOL_EXISTS', `a dm device named ${create.name} exists; replay builds a new pool (choose another --pool-name)`, { device: create.name });
  }
  if (!existing) await formatFreshMetadata(backend, create.pool.metadataDevice);
  const fs = plan.state.base?.fs;
  const ctx = { pool: create.name, fsType: isFsType(fs) ? fs : 'ext4' as const, backend };
  const total = plan.steps.length;
  let r;
  try {
    r = await runPlan(backend, plan.steps, ctx, async (st) => {
      throw new TypeError(`applyReplay: a replay plan has no ${st.kind} step`);
    }, (p) => {
      if (p.outcome !== 'failed') opts.onStep?.(p.index + 1, total);
    });
  } catch (err) {
    const at = (err as { planIndex?: number }).planIndex;
    if (err && typeof err === 'object' && at !== undefined) Object.assign(err, { step: at, stepKind: plan.steps[at]?.kind });
    throw err;
  }
  const md = await backend.poolMetadata(create.name);
  const want = [...plan.state.devices.values()].map((d) => d.deviceId).sort((a, b) => a - b);
  const matches = md.transactionId === plan.transactionId && JSON.stringify(md.ids) === JSON.stringify(want);
  return { completed: r.completed, transactionId: md.transactionId, ids: md.ids, matches };
}
