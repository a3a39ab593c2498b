/**
 * Replay into device-mapper (issue 5): rebuild a pool on an empty metadata device from the journal alone.
 * The result has the same thin device ids, the same snapshot lineage and the same transaction id as the
 * journal's state at the chosen point. Data is not in the journal: thin devices come back empty (snapshots
 * share the blocks of their — empty — origins), and the base image's filesystem is not re-created.
 *
 * planReplay is pure: records → plan (plain data, for --dry-run) + the model state it leads to.
 */
import { ThinjournalError, type JournalRecord } from '@thinjournal/spec';
import { Projection, stateHash, type State } from '@thinjournal/model';
import { applyRecord } from './apply.js';
import type { PoolTableView } from './plan.js';

export type ReplayStep =
  | { readonly kind: 'createPool'; readonly name: string; readonly pool: PoolTableView }
  | { readonly kind: 'createThin'; readonly deviceId: number; readonly txId: number; readonly hash: string }
  | { readonly kind: 'createSnap'; readonly deviceId: number; readonly originId: number; readonly txId: number; readonly hash: string }
  | { readonly kind: 'deleteThin'; readonly deviceId: number; readonly txId: number; readonly hash: string }
  | { readonly kind: 'setTransactionId'; readonly from: number; readonly to: number };

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
    const b = r.body as Record<string, unknown>;
    switch (r.type) {
      case 'PoolInitialised': {
        const pool = p.state.pool!;
        steps.push({
          kind: 'createPool', name: target.poolName ?? pool.poolName,
          pool: { dataDevice: target.dataDevice ?? pool.dataDevice, metadataDevice: target.metadataDevice ?? pool.metadataDevice, dataSize: pool.dataSize, blockSize: pool.blockSize },
        });
        // An adopted pool starts at its own transaction id; a fresh metadata device starts at 0.
        if (r.txId !== 0) steps.push({ kind: 'setTransactionId', from: 0, to: r.txId });
        break;
      }
      case 'TransactionBegan':
        pendingTx = r.txId;
        pendingSteps = [];
        break;
      case 'BaseImageCreated':
      case 'DeviceCreated':
        pendingSteps.push({ kind: 'createThin', deviceId: b.deviceId as number, txId: r.txId, hash: b.hash as string });
        break;
      case 'SnapshotCreated':
        pendingSteps.push({ kind: 'createSnap', deviceId: b.deviceId as number, originId: b.parentDeviceId as number, txId: r.txId, hash: b.hash as string });
        break;
      case 'DeviceDeleted':
        pendingSteps.push({ kind: 'deleteThin', deviceId: b.deviceId as number, txId: r.txId, hash: b.hash as string });
        break;
      case 'TransactionCommitted':
        steps.push(...pendingSteps, { kind: 'setTransactionId', from: before.txId, to: r.txId });
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
 * Runs a replay plan on a backend. The metadata device must be empty (no pool metadata on it): replay never
 * overwrites a pool. Steps run in order; the first failure stops it (the error says which step).
 */
export async function applyReplay(plan: ReplayPlan, backend: import('@thinjournal/dm').Backend, opts: { onStep?: (i: number, total: number) => void } = {}): Promise<ReplayResult> {
  const { poolTableSpec } = await import('./engine.js');
  const create = plan.steps[0];
  if (create?.kind !== 'createPool') throw new TypeError('applyReplay: a replay plan starts with createPool');
  const existing = await backend.readMetadata(create.pool.metadataDevice).catch(() => null);
  if (existing && (existing.transactionId !== 0 || existing.ids.length)) {
    throw new ThinjournalError('ERR_POOL_EXISTS', `${create.pool.metadataDevice} holds a pool (transaction ${existing.transactionId}, ${existing.ids.length} thin devices); replay needs an empty metadata device`, { device: create.pool.metadataDevice });
  }
  let i = 0;
  for (const st of plan.steps) {
    try {
      switch (st.kind) {
        case 'createPool':
          if (!existing) await backend.zeroRange(st.pool.metadataDevice, 0, 4096); // dm-thin formats zeroed metadata
          await backend.createPool(st.name, poolTableSpec(st.pool));
          break;
        case 'createThin': await backend.createThin(create.name, st.deviceId); break;
        case 'createSnap': await backend.createSnap(create.name, st.deviceId, st.originId); break;
        case 'deleteThin': await backend.deleteThin(create.name, st.deviceId); break;
        case 'setTransactionId': await backend.setTransactionId(create.name, st.from, st.to); break;
      }
    } catch (err) {
      throw Object.assign(err as Error, { step: i, stepKind: st.kind });
    }
    opts.onStep?.(++i, plan.steps.length);
  }
  const md = await backend.poolMetadata(create.name);
  const want = [...plan.state.devices.values()].map((d) => d.deviceId).sort((a, b) => a - b);
  const matches = md.transactionId === plan.transactionId && JSON.stringify(md.ids) === JSON.stringify(want);
  return { completed: i, transactionId: md.transactionId, ids: md.ids, matches };
}
