/**
 * Engine: runs commands through the transaction protocol (journal-spec/protocol.md §2) and recovers after a
 * crash (§3–§4). The model decides; the journal makes the intent durable; the backend changes the kernel;
 * `set_transaction_id` is the commit point; the outcome record needs no sync of its own.
 *
 * One operation at a time: the model admits one pending transaction, and the pool's transaction id
 * serialises commit points anyway. Concurrent callers queue here; their intents still share group commits
 * with any other writer of the journal.
 */
import { ThinjournalError, type ChainResult, type JournalEvent, type JournalRecord } from '@thinjournal/spec';
import type { Journal } from '@thinjournal/journal';
import { Projection, decide, stateHash, toPlain, fromPlain, type Command, type State } from '@thinjournal/model';
import { SECTOR_BYTES as SECTOR, formatFreshMetadata, isFsType, poolTableSpec, thinPoolTable, thinTable, thinTableSpec, type Backend, type FsType } from '@thinjournal/dm';
import { runPlan } from './execute.js';
import { applyRecord, modelProblem } from './apply.js';
import { describeStep, planRecovery, type BlockDeviceView, type JournalView, type KernelView, type PendingIntent, type RecoveryPlan, type Step } from './plan.js';
import { TransactionSteps, transactionSteps, type TransactionContext, type TransactionStep } from './transaction.js';

/** Events that add kernel state: journaled before the kernel is asked (see Engine.direct). */
const ADDS_KERNEL_STATE: ReadonlySet<string> = new Set(['DeviceActivated', 'DeviceMounted']);

/** An error as an outcome record's reason: its code and message, within an event's string limit. */
function failureReason(err: unknown): string {
  return `${(err as { code?: string }).code ?? 'error'}: ${(err as Error).message}`.slice(0, 4000);
}

/** A point of the protocol, for observers (progress, tests that crash there). */
export type ProtocolPoint = 'after-intent' | `after-step-${number}` | 'after-commit-point' | 'after-outcome' | `after-event-${number}`;

export interface EngineOptions {
  /** Default actor for journaled events. */
  readonly actor?: string;
  /**
   * Awaited at every protocol point. Tests simulate a crash by returning a promise that never settles and
   * abandoning the engine (as a killed process would); nothing in the engine special-cases that.
   */
  readonly onPoint?: (point: ProtocolPoint, command: Command) => void | Promise<void>;
  /**
   * Store a checkpoint every this many records (0: never) — or, when the state has more live devices than
   * that, every as many records as it has devices: a checkpoint costs O(devices), so spacing them by at least
   * that many records keeps its cost O(1) per record amortised, and the tail a reopen replays stays
   * O(max(this, devices)).
   */
  readonly checkpointEvery?: number;
}

/** Where kernelView looks for the pool's devices when they are not (yet) at the journal's paths. */
export interface KernelViewOptions {
  /** The pool's metadata is read from here instead of the journal's metadata device (an unattached loop file). */
  readonly metadataSource?: string;
  /** The block devices that will be at the pool's paths (given: not looked up). */
  readonly devices?: { readonly data?: BlockDeviceView | null; readonly metadata?: BlockDeviceView | null };
}

export interface ExecuteMeta { readonly actor?: string; readonly reason?: string }

export interface RecoveryResult {
  readonly plan: RecoveryPlan;
  /** Steps run (skipped ones count: their guard said done). */
  readonly completed: number;
  readonly skipped: number;
}

/**
 * The journal's state: the latest valid checkpoint (its state hash re-verified: ERR_STATE_HASH_MISMATCH),
 * then the records after it. Reads only; works on a read-only journal. A record the model cannot apply is
 * ERR_JOURNAL_CORRUPT (reason `model`, its seq named).
 */
export async function loadState(journal: Journal, opts: { onProgress?: (applied: number) => void } = {}): Promise<State> {
  const cp = await journal.latestCheckpoint();
  let state: State | undefined;
  let from = 1;
  if (cp) {
    let s: State;
    try {
      s = fromPlain(cp.state);
    } catch (err) {
      throw new ThinjournalError('ERR_STATE_HASH_MISMATCH', `checkpoint at seq ${cp.seq}: its state is not a state of the model: ${(err as Error).message}`, { seq: cp.seq, cause: err });
    }
    if (stateHash(s) !== cp.stateHash) {
      throw new ThinjournalError('ERR_STATE_HASH_MISMATCH', `checkpoint at seq ${cp.seq}: state hashes to ${stateHash(s)}, stored ${cp.stateHash}`, { seq: cp.seq });
    }
    state = s;
    from = cp.seq + 1;
  }
  const p = new Projection(state);
  let n = 0;
  await journal.forEach((r) => {
    applyRecord(p, r);
    if (opts.onProgress && ++n % 10_000 === 0) opts.onProgress(n);
  }, { fromSeq: from });
  return p.state;
}

/**
 * The model's check of a whole journal (`verify`'s last step): every record from seq 1 applied to the model,
 * and at every valid checkpoint the replayed state's hash compared with the one stored. Reports the first seq
 * the model cannot apply (reason `model`); never throws for that. Run it after the chain verified.
 */
export async function verifyModel(journal: Journal, opts: { checkpoints?: readonly number[]; onProgress?: (applied: number) => void } = {}): Promise<ChainResult> {
  // Each checkpoint's stored state, as its hash (null: it is not a state of the model), and its stateHash.
  const stored = new Map<number, { stateHash: string; ofState: string | null }>();
  for (const seq of opts.checkpoints ?? []) {
    const cp = await journal.checkpointAt(seq);
    if (!cp) continue;
    let ofState: string | null;
    try { ofState = stateHash(fromPlain(cp.state)); } catch { ofState = null; }
    stored.set(seq, { stateHash: cp.stateHash, ofState });
  }
  const p = new Projection();
  let n = 0;
  let problem: ChainResult | null = null;
  await journal.forEach((r) => {
    if (problem) return;
    try {
      p.apply(r);
    } catch (err) {
      if (!(err instanceof ThinjournalError)) throw err;
      problem = { ok: false, records: n, ...modelProblem(r, err) };
      return;
    }
    n++;
    const want = stored.get(r.seq);
    if (want !== undefined) {
      // Both the checkpoint's stateHash and the state it stores must be the replay's.
      const h = stateHash(p.state);
      if (want.stateHash !== h || want.ofState !== h) {
        const what = want.ofState === null ? 'a state the model cannot read' : `a state hashing to ${want.ofState}`;
        problem = { ok: false, records: n, kind: 'corrupt', seq: r.seq, reason: 'model', message: `the state replayed to seq ${r.seq} hashes to ${h}; its checkpoint stores ${what} and the stateHash ${want.stateHash}` };
      }
    }
    if (opts.onProgress && n % 10_000 === 0) opts.onProgress(n);
  });
  return problem ?? { ok: true, records: n, last: null };
}

/** What a pending intent's events may have done to the kernel: the recovery planner's PendingIntent fields. */
function pendingEffects(s: State, events: readonly JournalEvent[]): Pick<PendingIntent, 'activates' | 'creates' | 'deletes' | 'dataSize'> {
  let base = false;
  const creates: number[] = [];
  const deletes: { deviceId: number; name: string | null }[] = [];
  let dataSize: number | undefined;
  for (const e of events) {
    switch (e.type) {
      case 'BaseImageCreated':
        base = true;
        creates.push(e.body.deviceId);
        break;
      case 'DeviceCreated':
      case 'SnapshotCreated':
        creates.push(e.body.deviceId);
        break;
      case 'DeviceDeleted': {
        const d = s.devices.get(e.body.hash);
        deletes.push({ deviceId: e.body.deviceId, name: d?.active ? d.dmName : null });
        break;
      }
      case 'PoolResized':
        dataSize ??= e.body.dataSize;
        break;
      default:
        break;
    }
  }
  return { activates: base ? [`${s.pool!.devicePrefix}-base`] : [], creates, deletes, ...(dataSize !== undefined ? { dataSize } : {}) };
}

export class Engine {
  private readonly projection: Projection;
  private tail: Promise<unknown> = Promise.resolve();
  private sinceCheckpoint = 0;

  private constructor(readonly journal: Journal, readonly backend: Backend, state: State, private readonly opts: EngineOptions) {
    this.projection = new Projection(state);
  }

  /**
   * Rebuilds the state from the journal: the latest valid checkpoint (its state hash re-verified), then the
   * records after it. Does not touch the kernel: call recover() for that.
   */
  static async open(journal: Journal, backend: Backend, opts: EngineOptions = {}): Promise<Engine> {
    return new Engine(journal, backend, await loadState(journal), opts);
  }

  get state(): State {
    return this.projection.state;
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => {});
    return run;
  }

  private async point(p: ProtocolPoint, c: Command): Promise<void> {
    if (this.opts.onPoint) await this.opts.onPoint(p, c);
  }

  private async append(events: readonly JournalEvent[], meta: ExecuteMeta, sync = true): Promise<JournalRecord[]> {
    const stamped = events.map((e) => ({ ...e, actor: e.actor ?? meta.actor ?? this.opts.actor, reason: e.reason ?? meta.reason }) as JournalEvent);
    const recs = await this.journal.append(stamped, { sync });
    for (const r of recs) this.projection.apply(r);
    this.sinceCheckpoint += recs.length;
    return recs;
  }

  private poolName(): string {
    const p = this.state.pool;
    if (!p) throw new ThinjournalError('ERR_POOL_NOT_INITIALISED', 'the pool has not been initialised');
    return p.poolName;
  }

  /** Decides, journals and applies `command`. Resolves with the journaled records once the operation is done. */
  execute(command: Command, meta: ExecuteMeta = {}): Promise<JournalRecord[]> {
    return this.serial(async () => {
      const events = decide(this.state, command); // coded error: nothing changed anywhere
      if (events.length === 0) return [];
      const out = events[0]!.type === 'TransactionBegan'
        ? await this.transaction(command, events, meta)
        : await this.direct(command, events, meta);
      await this.maybeCheckpoint();
      return out;
    });
  }

  /** protocol.md §2: intent → kernel steps → set_transaction_id → outcome. */
  private async transaction(command: Command, events: readonly JournalEvent[], meta: ExecuteMeta): Promise<JournalRecord[]> {
    const T = this.state.txId;
    const intent = await this.append(events, meta); // (1) durable before the kernel is touched
    await this.point('after-intent', command);
    const pool = this.poolName();
    const made = new TransactionSteps();
    const ctx: TransactionContext = { state: this.state, running: async (name) => { const i = await this.backend.info(name); return !!i && !i.suspended; } };
    let step = 0;
    try {
      for (const e of events.slice(1)) {
        for (const st of await transactionSteps(e, ctx)) {
          await this.transactionStep(pool, st);
          made.done(st);
          await this.point(`after-step-${++step}`, command);
        }
      }
      await this.backend.setTransactionId(pool, T, T + 1); // (3) the commit point
    } catch (err) {
      await this.undo(pool, made, T + 1, err, meta);
      throw err;
    }
    await this.point('after-commit-point', command);
    // (4) The outcome: no sync of its own (recovery re-derives it from the kernel's transaction id).
    const outcome = await this.append([{ type: 'TransactionCommitted', txId: T + 1, body: {} }], meta, false);
    await this.point('after-outcome', command);
    return [...intent, ...outcome];
  }

  /** One kernel step of a transaction, run as is (no guard: see transaction.ts). */
  private async transactionStep(pool: string, st: TransactionStep): Promise<void> {
    const b = this.backend;
    switch (st.kind) {
      case 'createThin': return b.createThin(pool, st.deviceId);
      case 'createSnap': return b.createSnap(pool, st.deviceId, st.originId);
      case 'deleteThin': return b.deleteThin(pool, st.deviceId);
      case 'activateThin': await b.activateThin(st.name, thinTableSpec(b.devicePath(pool), st.deviceId, st.size)); return;
      case 'mkfs': return b.mkfs(b.devicePath(st.name), st.fs, { uuid: st.uuid, args: [...st.args] });
      case 'removeDevice': await b.remove(st.name); return;
      case 'suspendDevice': return b.suspend(st.name);
      case 'resumeDevice': await b.resume(st.name); return;
      case 'reloadPool':
        await b.load(pool, [thinPoolTable(poolTableSpec(st.pool))]);
        await b.suspend(pool);
        await b.resume(pool);
        return;
    }
  }

  /** A kernel step failed before the commit point: undo what it made, record the roll-back. */
  private async undo(pool: string, made: TransactionSteps, txId: number, cause: unknown, meta: ExecuteMeta): Promise<void> {
    try {
      for (const st of made.undo()) await this.transactionStep(pool, st);
      const reason = failureReason(cause);
      await this.append([{ type: 'TransactionRolledBack', txId, body: { reason } }], meta);
    } catch (undoErr) {
      // Leave the intent pending: recovery decides at the next start (protocol.md §4), never a guess here.
      (cause as { undoError?: unknown }).undoError = undoErr;
    }
  }

  /**
   * Activation, mounts and markers, which do not change pool metadata. The order keeps one invariant after any
   * crash: what the kernel has active or mounted is a subset of what the journal says (protocol.md §2), so
   * recovery only ever adds (re-activates, re-mounts) and never has to find something it was not told of:
   *  - events that add kernel state (DeviceActivated, DeviceMounted) are journaled first, then done;
   *  - events that remove it (DeviceUnmounted, DeviceDeactivated) and the rest are done first, then journaled.
   */
  private async direct(command: Command, events: readonly JournalEvent[], meta: ExecuteMeta): Promise<JournalRecord[]> {
    if (events.every((e) => ADDS_KERNEL_STATE.has(e.type))) {
      const recs = await this.append(events, meta);
      let i = 0;
      for (const e of events) {
        try {
          await this.kernelFor(e);
        } catch (err) {
          // Not a crash: the kernel refused. Make the journal true again, then report.
          await this.compensate(events.slice(0, i + 1), meta).catch((cerr) => { (err as { compensationError?: unknown }).compensationError = cerr; });
          throw err;
        }
        await this.point(`after-event-${++i}`, command);
      }
      return recs;
    }
    const done: JournalEvent[] = [];
    try {
      let i = 0;
      for (const e of events) {
        await this.kernelFor(e);
        done.push(e);
        await this.point(`after-event-${++i}`, command);
      }
    } catch (err) {
      if (done.length) await this.append(done, meta); // the journal says what did happen
      throw err;
    }
    return this.append(done, meta);
  }

  /** Undoes journaled-first events whose kernel step failed (or preceded the failure), newest first. */
  private async compensate(events: readonly JournalEvent[], meta: ExecuteMeta): Promise<void> {
    const undo: JournalEvent[] = [];
    for (const e of [...events].reverse()) {
      switch (e.type) {
        case 'DeviceMounted':
          if (await this.backend.mounted(e.body.path)) await this.backend.umount(e.body.path);
          undo.push({ type: 'DeviceUnmounted', txId: e.txId, body: { hash: e.body.hash, path: e.body.path } });
          break;
        case 'DeviceActivated':
          if (await this.backend.info(e.body.name)) await this.backend.remove(e.body.name);
          undo.push({ type: 'DeviceDeactivated', txId: e.txId, body: { hash: e.body.hash, deferred: false } });
          break;
        default:
          break;
      }
    }
    await this.append(undo, { ...meta, reason: 'the kernel refused; undone' });
  }

  /** The kernel's side of an event outside a transaction; each is idempotent (what is already so is left). */
  private async kernelFor(e: JournalEvent): Promise<void> {
    const b = this.backend;
    switch (e.type) {
      case 'PoolInitialised': {
        const { poolName, metadataDevice } = e.body;
        if (await b.info(poolName)) return; // adopt the existing pool device
        await formatFreshMetadata(b, metadataDevice);
        await b.createPool(poolName, poolTableSpec(e.body));
        return;
      }
      case 'DeviceActivated': {
        const { name } = e.body;
        const live = await b.info(name);
        if (live) {
          // A device deactivated with deferred removal that is wanted again: the kernel must not remove it at
          // its last close any more (Docker's cancelDeferredRemoval; dm-ioctl's own "@" message).
          if (live.deferredRemove) await b.message(name, '@cancel_deferred_remove');
          return;
        }
        await b.activateThin(name, thinTableSpec(b.devicePath(this.poolName()), e.body.deviceId, e.body.size));
        return;
      }
      case 'DeviceDeactivated': {
        const name = this.state.devices.get(e.body.hash)?.dmName;
        if (name && (await b.info(name))) await b.remove(name, { deferred: e.body.deferred });
        return;
      }
      case 'DeviceMounted': {
        const name = this.state.devices.get(e.body.hash)!.dmName!;
        const { path, options } = e.body;
        await b.mount(b.devicePath(name), path, { fsType: this.fsType(), ...(options ? { data: options } : {}) });
        return;
      }
      case 'DeviceUnmounted':
        await b.umount(e.body.path);
        return;
      case 'DeviceResized': {
        const d = this.state.devices.get(e.body.hash)!;
        if (d.dmName && (await b.info(d.dmName))) {
          await b.load(d.dmName, [thinTable(thinTableSpec(b.devicePath(this.poolName()), d.deviceId, e.body.size))]);
          await b.suspend(d.dmName);
          await b.resume(d.dmName);
        }
        return;
      }
      case 'DeletionDeferred':
      case 'PoolDevicesAttached': // the caller attached them; the journal records where they are now
      case 'Checkpoint':
      case 'SnapshotPrepared': // the snapshot namespace: journal only
      case 'SnapshotCommitted':
      case 'SnapshotLabelsUpdated':
      case 'SnapshotRemoved':
        return;
      default:
        throw new ThinjournalError('ERR_EVENT_CONFLICT', `${e.type} is not an activation, mount or marker event`);
    }
  }

  /** The base image's filesystem, and so every mountable device's (ext4 before there is a base image). */
  private fsType(): FsType {
    const fs = this.state.base?.fs ?? 'ext4';
    if (!isFsType(fs)) throw new ThinjournalError('ERR_EVENT_CONFLICT', `the base image's filesystem ${JSON.stringify(fs)} is not ext4 or xfs`);
    return fs;
  }

  private async maybeCheckpoint(): Promise<void> {
    const every = this.opts.checkpointEvery ?? 0;
    if (every <= 0 || this.sinceCheckpoint < every) return;
    const s = this.state;
    if (s.pending || this.sinceCheckpoint < s.devices.size) return;
    const head = this.journal.head().seq;
    await this.journal.putCheckpoint(head, toPlain(s), stateHash(s));
    this.sinceCheckpoint = 0;
  }

  // ---- recovery -------------------------------------------------------------------------------

  /** The journal's side of recovery, from the state. */
  journalView(): JournalView {
    const s = this.state;
    const pool = s.pool!;
    const pending = s.pending;
    return {
      poolName: pool.poolName,
      pool: { dataDevice: pool.dataDevice, metadataDevice: pool.metadataDevice, dataSize: pool.dataSize, blockSize: pool.blockSize },
      committedTxId: s.txId,
      pending: pending && { txId: pending.txId, op: pending.op, ...(pending.hash !== null ? { hash: pending.hash } : {}), ...pendingEffects(s, pending.events) },
      devicePrefix: pool.devicePrefix,
      devices: [...s.devices.values()].map((d) => ({ hash: d.hash, deviceId: d.deviceId, size: d.size, activeName: d.active ? d.dmName : null, mounts: d.mounts.map((m) => m.path), ...(d.removalDeferred ? { removalDeferred: true } : {}) })),
    };
  }

  /**
   * The kernel's side of recovery, read through the backend. `devices` names other paths for the pool's data
   * and metadata devices than the journal's (a dry run's loop files not attached yet: `metadataSource` is
   * where their metadata can be read, `data`/`metadata` what will be there).
   */
  async kernelView(opts: KernelViewOptions = {}): Promise<KernelView> {
    const s = this.state;
    const pool = s.pool!;
    const b = this.backend;
    // A dm device without a live table is a create that a crash cut short (DM_DEV_CREATE done, its table
    // load and resume not): it is not active. Planned as absent, its activation's createDevice step
    // completes it (packages/dm plan.ts, guard device-absent).
    const poolInfo = await b.info(pool.poolName);
    const poolActive = poolInfo?.activeTable === true;
    let transactionId: number | null = null;
    let thinIds: number[] = [];
    let metadataGeometry: KernelView['metadataGeometry'] = null;
    const poolSuspended = poolActive && poolInfo!.suspended;
    let metadataError: string | null = null;
    // A suspended pool is not read through a metadata snapshot (its messages would wait for the resume): the
    // planner reports the suspension alone, and the repair's resume comes before anything else is looked at.
    if (!poolSuspended) try {
      const md = poolActive ? await b.poolMetadata(pool.poolName) : await b.readMetadata(opts.metadataSource ?? pool.metadataDevice);
      transactionId = md.transactionId;
      thinIds = md.ids;
      metadataGeometry = { blockSize: md.dataBlockSectors * SECTOR, dataSize: md.dataBlocks * md.dataBlockSectors * SECTOR };
    } catch (err) {
      // A missing tool is not a pool whose metadata cannot be read: say what to install instead of reporting drift.
      const cause = (err as { cause?: { code?: unknown } }).cause;
      if ((err as { code?: string }).code === 'ERR_FS_TOOL' && cause?.code === 'ENOENT') {
        throw new ThinjournalError('ERR_FS_TOOL', `${(err as { tool?: string }).tool ?? 'thin_dump'} is not installed: recovery reads the pool's thin ids with thin-provisioning-tools (Debian/Ubuntu: apt install thin-provisioning-tools)`, { cause: err });
      }
      transactionId = null;
      metadataError = (err as Error).message;
    }
    let poolTable: KernelView['poolTable'] = null;
    if (poolActive) {
      const t = await b.poolTable(pool.poolName);
      poolTable = { dataDevice: t.dataDevice, metadataDevice: t.metadataDevice, dataSize: t.lengthSectors * SECTOR, blockSize: t.dataBlockSectors * SECTOR };
    }
    const blockDevice = async (path: string): Promise<BlockDeviceView | null> => {
      const number = await b.deviceNumber(path);
      return number === null ? null : { number, size: await b.blockDeviceSize(path) };
    };
    const poolDevices = {
      data: opts.devices && 'data' in opts.devices ? opts.devices.data ?? null : await blockDevice(pool.dataDevice),
      metadata: opts.devices && 'metadata' in opts.devices ? opts.devices.metadata ?? null : await blockDevice(pool.metadataDevice),
    };
    const devices: string[] = [];
    const suspended: string[] = [];
    const targets: Record<string, string> = {};
    const prefix = `${pool.devicePrefix}-`;
    for (const name of (await b.listDevices()).map((d) => d.name).sort()) {
      const info = await b.info(name);
      if (!info?.activeTable) continue;
      devices.push(name);
      if (name === pool.poolName) continue;
      if (info.suspended) suspended.push(name);
      if (name.startsWith(prefix)) {
        const table = await b.table(name);
        targets[name] = table.length === 1 ? table[0]!.type : table.map((l) => l.type).join('+') || 'empty';
      }
    }
    const mounts: string[] = [];
    for (const d of s.devices.values()) for (const m of d.mounts) if (await b.mounted(m.path)) mounts.push(m.path);
    return {
      poolActive, transactionId, thinIds, devices, mounts: mounts.sort(), suspended,
      poolSuspended, poolTable, metadataError, metadataGeometry, poolDevices, targets,
    };
  }

  /** Plans recovery and, unless dryRun or drift, applies the plan. Idempotent: a second run plans nothing. */
  recover(opts: { dryRun?: boolean; actor?: string } & KernelViewOptions = {}): Promise<RecoveryResult> {
    return this.serial(async () => {
      if (!this.state.pool) return { plan: { verdict: 'in-sync', reason: 'no pool in the journal', steps: [] }, completed: 0, skipped: 0 };
      const plan = planRecovery(this.journalView(), await this.kernelView(opts));
      if (opts.dryRun || plan.verdict === 'drift') return { plan, completed: 0, skipped: 0 };
      const r = await this.applySteps(plan.steps, { actor: opts.actor ?? 'recovery' });
      return { plan, ...r };
    });
  }

  /**
   * Applies the repair a drift plan offers, once an operator confirmed it (`thinjournal recover --repair`).
   * Journaled like everything done to the kernel: RepairBegan (the drift and every step, durable before the
   * first), then RepairCompleted, or RepairFailed naming the step that failed (its error is rethrown).
   */
  applyRepair(plan: RecoveryPlan, meta: ExecuteMeta = {}): Promise<{ completed: number; skipped: number }> {
    return this.serial(async () => {
      const steps = plan.repair ?? [];
      if (plan.verdict !== 'drift' || steps.length === 0) return { completed: 0, skipped: 0 };
      const m = { actor: meta.actor ?? 'recovery', reason: meta.reason ?? 'operator-confirmed repair' };
      const txId = this.state.txId;
      await this.append([{ type: 'RepairBegan', txId, body: { drift: plan.reason.slice(0, 4000), steps: steps.map(describeStep) } }], m);
      try {
        const r = await this.applySteps(steps, m);
        await this.append([{ type: 'RepairCompleted', txId: this.state.txId, body: { completed: r.completed, skipped: r.skipped } }], m);
        return r;
      } catch (err) {
        const reason = failureReason(err);
        const completed = (err as { completed?: number }).completed ?? 0;
        await this.append([{ type: 'RepairFailed', txId: this.state.txId, body: { completed, reason } }], m).catch(() => {});
        throw err;
      }
    });
  }

  /**
   * Runs a plan through the backend's plan executor (execute.ts): kernel steps between journal appends go in
   * one executePlan call each — on KernelBackend one native call on a worker thread that evaluates each
   * step's guard itself; appends are journaled here, in the plan's order. A failed step throws its error.
   */
  private async applySteps(steps: readonly Step[], meta: ExecuteMeta): Promise<{ completed: number; skipped: number }> {
    const ctx = { pool: this.poolName(), fsType: this.fsType(), backend: this.backend };
    return runPlan(this.backend, steps, ctx, async (st) => {
      switch (st.kind) {
        case 'append':
          return this.append(st.events, meta, st.sync);
        case 'adoptDataSize': {
          // The kernel's pool already has this size: the transaction reloads the same table and moves the
          // transaction id, so the journal's pool and the kernel's agree again.
          const command: Command = { type: 'resizePool', dataSize: st.dataSize };
          const events = decide(this.state, command);
          return events.length ? this.transaction(command, events, meta) : [];
        }
      }
    });
  }
}
