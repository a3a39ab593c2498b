/**
 * Runs a recovery plan (plan.ts) through a Backend's plan executor: TypeScript decides, the executor executes.
 *
 * - lowerStep turns a plan's step (recovery's or replay's) into an executor step (packages/dm ExecStep): the
 *   pool's and thin devices' tables are built with dm's geometry (poolTableSpec, thinTableSpec), names become
 *   node paths, the pool's name and the base image's filesystem come from the caller. The guard is carried
 *   over unchanged.
 * - runPlan splits the plan at its `append` steps, which are journal writes and not kernel steps: the kernel
 *   steps up to an append run as ONE executor call (one native call on KernelBackend), then the append, then
 *   the next run. The plan's order is kept exactly — it is the planner's decision (a roll-back's
 *   TransactionRolledBack is appended after the kernel's partial effects are undone and before activations
 *   are restored; a roll-forward's TransactionCommitted after set_transaction_id). A failed kernel step stops
 *   the plan before any later append, so the journal never records an outcome the kernel did not reach;
 *   recovery run again re-plans from what did happen (guards make the completed steps skip).
 */
import { poolTableSpec, thinPoolTable, thinTable, thinTableSpec, type Backend, type ExecStep, type FsType, type PlanProgress } from '@thinjournal/dm';
import type { Step } from './plan.js';

export interface LowerContext {
  /** The pool's dm name (deleteThin, setTransactionId and thin tables refer to it). */
  readonly pool: string;
  /** Filesystem of the base image and so of every mountable device. */
  readonly fsType: FsType;
  readonly backend: Pick<Backend, 'devicePath'>;
}

/** Steps the executor runs; the others are the Engine's (journal appends, a repair's resizePool transaction). */
export type KernelStep = Exclude<Step, { kind: 'append' | 'adoptDataSize' }>;
export type EngineStep = Extract<Step, { kind: 'append' | 'adoptDataSize' }>;

const isEngineStep = (s: Step): s is EngineStep => s.kind === 'append' || s.kind === 'adoptDataSize';

/** A planner step → the executor's step (tables built, paths resolved). */
export function lowerStep(st: KernelStep, c: LowerContext): ExecStep {
  switch (st.kind) {
    case 'createPool':
      return { kind: 'createDevice', name: st.name, table: [thinPoolTable(poolTableSpec(st.pool))], guard: 'device-absent' };
    case 'activateThin':
      return { kind: 'createDevice', name: st.name, table: [thinTable(thinTableSpec(c.backend.devicePath(c.pool), st.deviceId, st.size))], guard: 'device-absent' };
    case 'resumeDevice':
      return { kind: 'resumeDevice', name: st.name, guard: 'suspended' };
    case 'removeDevice':
      return { kind: 'removeDevice', name: st.name, guard: 'device-present' };
    case 'deleteThin':
      return { kind: 'deleteThin', pool: c.pool, deviceId: st.deviceId, guard: 'thin-present' };
    case 'setTransactionId':
      return { kind: 'setTransactionId', pool: c.pool, from: st.from, to: st.to, guard: 'txid-is-from' };
    case 'mount':
      return { kind: 'mount', device: c.backend.devicePath(st.name), path: st.path, fsType: c.fsType, guard: 'not-mounted' };
    case 'createThin':
      return { kind: 'createThin', pool: c.pool, deviceId: st.deviceId, guard: 'none' };
    case 'createSnap':
      return { kind: 'createSnap', pool: c.pool, deviceId: st.deviceId, originId: st.originId, guard: 'none' };
  }
}

export interface RunPlanResult {
  /** Steps run to an outcome, appends included. */
  readonly completed: number;
  /** Kernel steps whose guard said "already done". */
  readonly skipped: number;
}

/** Progress of a whole plan: `index` is the step's index in the plan (appends included). */
export type RunPlanProgress = PlanProgress | { readonly index: number; readonly kind: EngineStep['kind']; readonly outcome: 'done' };

/**
 * Runs `steps` in order: each maximal run of kernel steps in one `backend.executePlan` call, each of the
 * Engine's steps (appends) through `engineStep`. Throws the failed kernel step's error (ERR_KERNEL with its errno name), with
 * `planIndex` (the step's index in `steps`) and `completed` (steps done before it) attached.
 */
export async function runPlan(
  backend: Backend,
  steps: readonly Step[],
  ctx: LowerContext,
  engineStep: (step: EngineStep) => Promise<unknown>,
  onProgress?: (p: RunPlanProgress) => void,
): Promise<RunPlanResult> {
  let completed = 0;
  let skipped = 0;
  for (let i = 0; i < steps.length;) {
    const st = steps[i]!;
    if (isEngineStep(st)) {
      try {
        await engineStep(st);
      } catch (err) {
        if (err && typeof err === 'object') Object.assign(err, { planIndex: i, completed });
        throw err;
      }
      completed++;
      onProgress?.({ index: i, kind: st.kind, outcome: 'done' });
      i++;
      continue;
    }
    let j = i;
    const batch: ExecStep[] = [];
    for (let next = steps[j]; j < steps.length && next && !isEngineStep(next); next = steps[++j]) batch.push(lowerStep(next, ctx));
    const offset = i;
    const r = await backend.executePlan(batch, onProgress && ((p) => onProgress({ ...p, index: p.index + offset })));
    completed += r.completed;
    skipped += r.skipped;
    if (r.failed) {
      const err = r.failed.error;
      if (err && typeof err === 'object') Object.assign(err, { planIndex: offset + r.failed.index, completed });
      throw err;
    }
    i = j;
  }
  return { completed, skipped };
}
