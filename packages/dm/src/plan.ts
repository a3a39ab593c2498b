/**
 * Plans as the executor sees them: an ordered list of kernel steps, fully lowered (tables built, names and
 * paths resolved by the caller — TypeScript decides), each with a declarative guard that says when the step
 * is already done. `Backend.executePlan` runs a whole list: KernelBackend in one native call on a worker
 * thread (native/src/plan.cc), ModelBackend (and any other BackendBase) with `runPlanSteps` below. Both give
 * every guard the same meaning:
 *
 * | step | guard | skipped when | else |
 * |---|---|---|---|
 * | createDevice | device-absent | the dm device exists with a live table (its node is (re)made) | create + load + resume; a device without a live table (a create cut short by a crash) is completed: load + resume |
 * | resumeDevice | suspended | the device is absent or not suspended | resume |
 * | removeDevice | device-present | the device is absent (also: ENXIO from the remove) | remove |
 * | deleteThin | thin-present | `delete id` fails with ENODATA (the kernel's own lookup) | — (done) |
 * | setTransactionId | txid-is-from | the pool's status line already shows `to` | `set_transaction_id from to` (the kernel refuses EINVAL unless the id is `from`) |
 * | mount | not-mounted | the mount point is in /proc/self/mountinfo | mount(2) |
 * | createThin | none | never | `create_thin id` |
 * | createSnap | none | never | `create_snap id origin` (the origin is not active: a pool being built) |
 *
 * createThin and createSnap build a pool from nothing (replay, on empty metadata): there is nothing to find
 * already done, and an id that exists is the kernel's EEXIST, a failure. native/src/plan.cc knows the other
 * kinds; KernelBackend runs these two with the TypeScript executor below, between native runs (each is one
 * message ioctl either way).
 *
 * Thin ids are visible only through pool metadata (a metadata snapshot and thin_dump: a process and a
 * reservation), so thin-present is the message's own errno: exact, and atomic with the effect. Execution is
 * in order and stops at the first failure; the result lists the outcome of each step that ran and the failed
 * step's error (ERR_KERNEL with its errno name). There is no policy here: nothing is retried or reordered.
 */
import { errnoOf } from './errors.js';
import type { FsType } from './fs.js';
import type { TableLine } from './tables.js';

export type ExecStep =
  | { readonly kind: 'createDevice'; readonly name: string; readonly table: readonly TableLine[]; readonly guard: 'device-absent' }
  | { readonly kind: 'resumeDevice'; readonly name: string; readonly guard: 'suspended' }
  | { readonly kind: 'removeDevice'; readonly name: string; readonly guard: 'device-present' }
  | { readonly kind: 'deleteThin'; readonly pool: string; readonly deviceId: number; readonly guard: 'thin-present' }
  | { readonly kind: 'setTransactionId'; readonly pool: string; readonly from: number; readonly to: number; readonly guard: 'txid-is-from' }
  | { readonly kind: 'mount'; readonly device: string; readonly path: string; readonly fsType: FsType; readonly readOnly?: boolean; readonly data?: string; readonly guard: 'not-mounted' }
  | { readonly kind: 'createThin'; readonly pool: string; readonly deviceId: number; readonly guard: 'none' }
  | { readonly kind: 'createSnap'; readonly pool: string; readonly deviceId: number; readonly originId: number; readonly guard: 'none' };

/** The kinds native/src/plan.cc executes. */
export type NativeExecStep = Exclude<ExecStep, { kind: 'createThin' | 'createSnap' }>;
export const NATIVE_STEP_KINDS: ReadonlySet<ExecStep['kind']> = new Set<NativeExecStep['kind']>(['createDevice', 'resumeDevice', 'removeDevice', 'deleteThin', 'setTransactionId', 'mount']);
export const isNativeStep = (s: ExecStep): s is NativeExecStep => NATIVE_STEP_KINDS.has(s.kind);

export type StepOutcome = 'done' | 'skipped';

export interface PlanProgress {
  readonly index: number;
  readonly kind: ExecStep['kind'];
  readonly outcome: StepOutcome | 'failed';
  /** errno name of a failed step's kernel error. */
  readonly errnoName?: string;
}

export interface PlanResult {
  /** One per step that reached an outcome, in order (so a failed step's index = outcomes.length). */
  readonly outcomes: readonly StepOutcome[];
  /** Steps run to an outcome (done or skipped). */
  readonly completed: number;
  /** Of those, skipped because their guard said "already done". */
  readonly skipped: number;
  /** The step that failed (the plan stopped there) and its error; null when every step completed. */
  readonly failed: { readonly index: number; readonly step: ExecStep; readonly error: unknown } | null;
}

export const GUARD_OF: { readonly [K in ExecStep['kind']]: Extract<ExecStep, { kind: K }>['guard'] } = {
  createDevice: 'device-absent',
  resumeDevice: 'suspended',
  removeDevice: 'device-present',
  deleteThin: 'thin-present',
  setTransactionId: 'txid-is-from',
  mount: 'not-mounted',
  createThin: 'none',
  createSnap: 'none',
};

export function planResult(outcomes: StepOutcome[], failed: PlanResult['failed']): PlanResult {
  return { outcomes, completed: outcomes.length, skipped: outcomes.filter((o) => o === 'skipped').length, failed };
}

/** The operations the TypeScript executor needs (BackendBase has them all). */
export interface PlanTarget {
  info(name: string): Promise<{ suspended: boolean; activeTable: boolean } | null>;
  create(name: string, table: TableLine[]): Promise<unknown>;
  load(name: string, table: TableLine[]): Promise<unknown>;
  resume(name: string): Promise<unknown>;
  remove(name: string): Promise<unknown>;
  deleteThin(pool: string, id: number): Promise<void>;
  createThin(pool: string, id: number): Promise<void>;
  createSnap(pool: string, id: number, originId: number): Promise<void>;
  poolStatus(pool: string): Promise<{ failed: true } | { failed: false; transactionId: number }>;
  setTransactionId(pool: string, from: number, to: number): Promise<void>;
  mounted(path: string): Promise<unknown>;
  mount(device: string, path: string, opts: { fsType: FsType; readOnly?: boolean; data?: string }): Promise<void>;
}

async function runStep(b: PlanTarget, st: ExecStep): Promise<StepOutcome> {
  switch (st.kind) {
    case 'createDevice': {
      const i = await b.info(st.name);
      if (i?.activeTable) return 'skipped';
      if (!i) {
        await b.create(st.name, [...st.table]);
        return 'done';
      }
      // Present without a live table: a create cut short between DM_DEV_CREATE and its resume. Complete it.
      await b.load(st.name, [...st.table]);
      await b.resume(st.name);
      return 'done';
    }
    case 'resumeDevice':
      if (!(await b.info(st.name))?.suspended) return 'skipped';
      await b.resume(st.name);
      return 'done';
    case 'removeDevice':
      if (!(await b.info(st.name))) return 'skipped';
      try {
        await b.remove(st.name);
      } catch (err) {
        if (errnoOf(err) === 'ENXIO') return 'skipped';
        throw err;
      }
      return 'done';
    case 'deleteThin':
      try {
        await b.deleteThin(st.pool, st.deviceId);
      } catch (err) {
        if (errnoOf(err) === 'ENODATA') return 'skipped';
        throw err;
      }
      return 'done';
    case 'setTransactionId': {
      const s = await b.poolStatus(st.pool);
      if (!s.failed && s.transactionId === st.to) return 'skipped';
      await b.setTransactionId(st.pool, st.from, st.to);
      return 'done';
    }
    case 'mount':
      if (await b.mounted(st.path)) return 'skipped';
      await b.mount(st.device, st.path, { fsType: st.fsType, ...(st.readOnly !== undefined ? { readOnly: st.readOnly } : {}), ...(st.data !== undefined ? { data: st.data } : {}) });
      return 'done';
    case 'createThin':
      await b.createThin(st.pool, st.deviceId);
      return 'done';
    case 'createSnap':
      await b.createSnap(st.pool, st.deviceId, st.originId);
      return 'done';
  }
}

/** The TypeScript executor: the same guards as native/src/plan.cc, through a backend's own calls. */
export async function runPlanSteps(b: PlanTarget, steps: readonly ExecStep[], emit: (p: PlanProgress) => void): Promise<PlanResult> {
  const outcomes: StepOutcome[] = [];
  for (let index = 0; index < steps.length; index++) {
    const step = steps[index]!;
    let o: StepOutcome;
    try {
      o = await runStep(b, step);
    } catch (error) {
      const errnoName = errnoOf(error);
      emit({ index, kind: step.kind, outcome: 'failed', ...(errnoName ? { errnoName } : {}) });
      return planResult(outcomes, { index, step, error });
    }
    outcomes.push(o);
    emit({ index, kind: step.kind, outcome: o });
  }
  return planResult(outcomes, null);
}

/** A progress listener that cannot interrupt a running plan: its first exception is rethrown at the end. */
export function guardedListener(onProgress?: (p: PlanProgress) => void): { emit: (p: PlanProgress) => void; settle: (r: PlanResult) => PlanResult } {
  let failure: { error: unknown } | null = null;
  return {
    emit: (p) => {
      if (!onProgress || failure) return;
      try {
        onProgress(p);
      } catch (error) {
        failure = { error };
      }
    },
    settle: (r) => {
      // The plan ran to its end regardless (a step half-observed is no reason to stop the kernel's work).
      if (failure) throw failure.error;
      return r;
    },
  };
}
